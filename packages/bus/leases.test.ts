import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { KV } from "@nats-io/kv";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import {
  type Bus,
  claimLease,
  connectBus,
  fairShare,
  liveKeys,
  openLeaseBucket,
  parseLeaseValue,
  putBeat,
  releaseLease,
  renewLease,
} from "./index.ts";

const log = createLogger("leases-test", "silent");

describe("fairShare", () => {
  test.each([
    [16, 1, [16]],
    [16, 2, [8, 8]],
    [16, 3, [6, 5, 5]],
    [3, 5, [1, 1, 1, 0, 0]],
  ])("leases - %i items over %i members", (total, members, want) => {
    const got = Array.from({ length: members }, (_, rank) => fairShare(total, members, rank));
    expect(got).toEqual(want);
    expect(got.reduce((a, b) => a + b, 0)).toBe(total);
  });
});

describe("leases on NATS KV", () => {
  let nats: LocalNats;
  let bus: Bus;
  let kv: KV;
  const TTL = 600;
  beforeAll(async () => {
    nats = await startLocalNats({});
    bus = await connectBus({ url: nats.url, name: "leases-test", log });
    kv = await openLeaseBucket(bus, TTL, "leases-test");
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  test("leases - one holder at a time; renewals are revision-checked; a release frees the key at once", async () => {
    const rev = await claimLease(kv, "k1", "a");
    expect(rev).toBeGreaterThan(0);
    expect(await claimLease(kv, "k1", "b")).toBeUndefined();
    const rev2 = await renewLease(kv, "k1", "a", rev ?? 0);
    expect(rev2).toBeGreaterThan(rev ?? 0);
    // The old revision no longer renews: someone holding a stale view has lost the lease.
    expect(await renewLease(kv, "k1", "a", rev ?? 0)).toBeUndefined();
    const e = await kv.get("k1");
    expect(e && parseLeaseValue(e.value)?.holder).toBe("a");
    expect(await releaseLease(kv, "k1", rev ?? 0)).toBe(false);
    expect(await releaseLease(kv, "k1", rev2 ?? 0)).toBe(true);
    const taken = await claimLease(kv, "k1", "b");
    expect(taken).toBeGreaterThan(0);
    expect(await renewLease(kv, "k1", "a", rev2 ?? 0)).toBeUndefined();
  });

  test("leases - a lease nobody renews expires after the TTL and can be claimed", async () => {
    const rev = await claimLease(kv, "k2", "dead");
    expect(rev).toBeGreaterThan(0);
    const t0 = Date.now();
    let claimed: number | undefined;
    await waitFor(
      async () => {
        claimed = await claimLease(kv, "k2", "alive");
        return claimed !== undefined;
      },
      { timeoutMs: 5000, intervalMs: 50, what: "expired lease claimable" },
    );
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(TTL - 100);
    expect(waited).toBeLessThan(TTL + 2000);
    expect(await renewLease(kv, "k2", "dead", rev ?? 0)).toBeUndefined();
  });

  test("leases - membership beats are listed while they are renewed", async () => {
    await putBeat(kv, "member.x", "x");
    await putBeat(kv, "member.y", "y");
    expect((await liveKeys(kv, "member.")).sort()).toEqual(["member.x", "member.y"]);
    await waitFor(
      async () => {
        await putBeat(kv, "member.x", "x");
        return (await liveKeys(kv, "member.")).length === 1;
      },
      { timeoutMs: 5000, intervalMs: 100, what: "unrenewed member gone" },
    );
    expect(await liveKeys(kv, "member.")).toEqual(["member.x"]);
  });

  test("leases - a bad stored value is no lease", () => {
    expect(parseLeaseValue(new TextEncoder().encode("nope"))).toBeUndefined();
    expect(parseLeaseValue(new TextEncoder().encode('{"holder":1}'))).toBeUndefined();
  });
});
