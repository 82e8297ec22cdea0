import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { processV1 } from "@periscope/proto";
import {
  DROP_LAYOUT,
  decodeProcRecord,
  encodeProcRecord,
  encodeSockOwnerRecord,
  POLICY_VERDICT_LAYOUT,
  PROC_EVENT,
  SOCK_SOURCE,
  TRACE_LAYOUT,
} from "@periscope/wire";
import { FlowProcesses, TRACE_NETNS_COOKIE } from "./flow-join.ts";
import { ProcessCache } from "./process-cache.ts";

const NETNS = 77n;
const CLIENT = "10.9.0.1";
const SERVER = "10.9.0.2";

/**
 * A TCP connect owner of CLIENT:sport → SERVER:443 for process `tgid` (or of 10.9.1.<host>,
 * in namespace `ns`).
 */
function owner(
  tgid: number,
  sport: number,
  startNs = 5_000_000_000n,
  host?: number,
  ns = NETNS,
): Uint8Array {
  return encodeSockOwnerRecord({
    source: SOCK_SOURCE.TCP_CONNECT,
    cpu: 0,
    tsBootNs: 1n,
    pid: tgid,
    tgid,
    flowHash: 0,
    family: 4,
    proto: 6,
    netnsCookie: ns,
    saddr: host === undefined ? Uint8Array.of(10, 9, 0, 1) : Uint8Array.of(10, 9, 1, host),
    daddr: Uint8Array.of(10, 9, 0, 2),
    sport,
    dport: 443,
    uid: 1000,
    sockCookie: BigInt(sport),
    cgroupId: 9n,
    startNs,
    comm: "curl",
  });
}

function exec(cache: ProcessCache, tgid: number, binary: string, startNs = 5_000_000_000n): void {
  cache.apply(
    decodeProcRecord(
      encodeProcRecord({
        event: PROC_EVENT.EXEC,
        cpu: 0,
        tsBootNs: startNs,
        pid: tgid,
        tgid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        euid: 1000,
        egid: 1000,
        exitStatus: 0,
        cgroupId: 9n,
        parentStartNs: 0n,
        startNs,
        comm: binary.split("/").pop() ?? "",
        binary,
        args: [binary],
      }),
    ),
  );
}

const processIn = (any: Uint8Array | undefined) =>
  any === undefined
    ? undefined
    : fromBinary(processV1.ProcessSchema, fromBinary(AnySchema, any).value);

describe("flow join outcomes", () => {
  test("joined both ways; no owner; process unknown until its exec arrives", () => {
    const cache = new ProcessCache({ readOnMiss: false });
    const join = new FlowProcesses(cache);
    exec(cache, 4001, "/usr/bin/curl");
    join.noteOwner(owner(4001, 40001));
    join.noteOwner(owner(4002, 40002));
    // Sender's tuple, then the reply (receiver's tuple).
    expect(processIn(join.anyBytes(NETNS, 6, CLIENT, 40001, SERVER, 443))?.binary).toBe(
      "/usr/bin/curl",
    );
    expect(processIn(join.anyBytes(NETNS, 6, SERVER, 443, CLIENT, 40001))?.tgid).toBe(4001);
    // Another namespace's packet of the same tuple: the tuple's owner.
    expect(processIn(join.anyBytes(1n, 6, CLIENT, 40001, SERVER, 443))?.tgid).toBe(4001);
    expect(join.anyBytes(NETNS, 17, CLIENT, 40001, SERVER, 443)).toBeUndefined();
    // 4002's exec has not arrived: the record's part only.
    const unknown = processIn(join.anyBytes(NETNS, 6, CLIENT, 40002, SERVER, 443));
    expect(unknown?.tgid).toBe(4002);
    expect(unknown?.uid).toBe(1000);
    expect(unknown?.cgroupId).toBe(9n);
    expect(unknown?.binary).toBe("");
    expect(join.stats).toMatchObject({
      ownerRecords: 2,
      flowsWithProcess: 3,
      noOwner: 1,
      ownerExpired: 0,
      processUnknown: 1,
    });
    // Once the exec is in (and the retry interval passed), the flow carries the binary.
    exec(cache, 4002, "/usr/bin/wget");
    const retry = new FlowProcesses(cache, undefined, { missRetryMs: 0 });
    retry.noteOwner(owner(4002, 40002));
    expect(processIn(retry.anyBytes(NETNS, 6, CLIENT, 40002, SERVER, 443))?.binary).toBe(
      "/usr/bin/wget",
    );
  });

  test("a miss is retried after missRetryMs, not per flow", () => {
    const cache = new ProcessCache({ readOnMiss: false });
    const join = new FlowProcesses(cache, undefined, { missRetryMs: 60_000 });
    join.noteOwner(owner(4100, 41000));
    for (let i = 0; i < 5; i++) join.anyBytes(NETNS, 6, CLIENT, 41000, SERVER, 443);
    expect(cache.stats.lookups).toBe(1);
    expect(join.stats.processUnknown).toBe(5);
  });

  test("owners forgotten for room or when idle count as owner_expired", () => {
    const cache = new ProcessCache({ readOnMiss: false });
    const join = new FlowProcesses(cache, undefined, { maxSockets: 2, idleMs: 1000 });
    join.noteOwner(owner(1, 50001), 0);
    join.noteOwner(owner(2, 50002), 0);
    join.noteOwner(owner(3, 50003), 0); // evicts 50001
    expect(join.size).toBe(2);
    expect(join.stats.evicted).toBe(1);
    expect(join.anyBytes(NETNS, 6, SERVER, 443, CLIENT, 50001)).toBeUndefined();
    expect(join.stats.ownerExpired).toBe(1);
    // Same ports, another address: never had an owner.
    expect(join.anyBytes(NETNS, 6, "10.9.0.3", 50001, SERVER, 443)).toBeUndefined();
    expect(join.stats.noOwner).toBe(1);
    // 50002 stays in use; 50003 idles through four sweeps.
    for (let gen = 1; gen <= 4; gen++) {
      expect(join.anyBytes(NETNS, 6, CLIENT, 50002, SERVER, 443)).toBeDefined();
      join.sweep(gen * 1000);
    }
    expect(join.stats.idleExpired).toBe(1);
    expect(join.size).toBe(1);
    expect(join.anyBytes(NETNS, 6, CLIENT, 50003, SERVER, 443)).toBeUndefined();
    expect(join.stats.ownerExpired).toBe(2);
    expect(join.stats.noOwner).toBe(1);
    // A new record for the tuple: joined again.
    join.noteOwner(owner(3, 50003), 5000);
    expect(join.anyBytes(NETNS, 6, CLIENT, 50003, SERVER, 443)).toBeDefined();
  });
});

describe("owners sharing protocol and ports", () => {
  /** TCP owner of 10.9.1.<host>:40000 → SERVER:443 in namespace `ns`, process `tgid`. */
  const at = (host: number, tgid: number, ns = NETNS) =>
    owner(tgid, 40000, 5_000_000_000n, host, ns);
  const tgidOf = (join: FlowProcesses, host: number, ns = NETNS) =>
    processIn(join.anyBytes(ns, 6, `10.9.1.${host}`, 40000, SERVER, 443))?.tgid;

  test("each address its owner; a namespace's own owner first, else the newest; a new socket on a tuple replaces its owner", () => {
    const join = new FlowProcesses(new ProcessCache({ readOnMiss: false }));
    join.noteOwner(at(1, 101));
    join.noteOwner(at(2, 102));
    join.noteOwner(at(3, 103));
    join.noteOwner(at(2, 202, 88n)); // the same tuple in another namespace
    expect(join.size).toBe(4);
    expect([1, 2, 3].map((h) => tgidOf(join, h))).toEqual([101, 102, 103]);
    expect(tgidOf(join, 2, 88n)).toBe(202);
    expect(tgidOf(join, 2, 99n)).toBe(202); // no owner in namespace 99: the newest
    expect(tgidOf(join, 4)).toBeUndefined();
    join.noteOwner(at(2, 302)); // a new socket on 10.9.1.2:40000 in NETNS
    expect(join.size).toBe(4);
    expect(tgidOf(join, 2)).toBe(302);
    expect(tgidOf(join, 3)).toBe(103);
    expect(tgidOf(join, 2, 88n)).toBe(202);
  });

  test("idle owners leave the middle of a chain; eviction takes a whole chain and counts each", () => {
    const join = new FlowProcesses(new ProcessCache({ readOnMiss: false }), undefined, {
      maxSockets: 4,
      idleMs: 1000,
    });
    for (const h of [1, 2, 3]) join.noteOwner(at(h, 100 + h), 0);
    for (let gen = 1; gen <= 4; gen++) {
      expect(tgidOf(join, 1)).toBe(101);
      expect(tgidOf(join, 3)).toBe(103);
      join.sweep(gen * 1000);
    }
    expect(join.stats.idleExpired).toBe(1);
    expect(join.size).toBe(2);
    expect(tgidOf(join, 2)).toBeUndefined();
    expect(join.stats.ownerExpired).toBe(1);
    expect([tgidOf(join, 1), tgidOf(join, 3)]).toEqual([101, 103]);
    // Then 3, now the chain's end, idles out too.
    for (let gen = 5; gen <= 8; gen++) {
      expect(tgidOf(join, 1)).toBe(101);
      join.sweep(gen * 1000);
    }
    expect(join.stats.idleExpired).toBe(2);
    expect(join.size).toBe(1);
    expect(tgidOf(join, 3)).toBeUndefined();
    // A chain linked anew still takes new owners at its end.
    join.noteOwner(at(4, 104), 9000);
    expect([1, 2, 3, 4].map((h) => tgidOf(join, h))).toEqual([101, undefined, undefined, 104]);
    expect(join.size).toBe(2);
    // Other ports; then one more than room: the oldest chain (two owners) goes at once.
    join.noteOwner(owner(7, 47000), 9000);
    join.noteOwner(owner(8, 48000), 9000);
    expect(join.size).toBe(4);
    join.noteOwner(owner(9, 49000), 9000);
    expect(join.stats.evicted).toBe(2);
    expect(join.size).toBe(3);
    expect([1, 4].map((h) => tgidOf(join, h))).toEqual([undefined, undefined]);
    expect(processIn(join.anyBytes(NETNS, 6, CLIENT, 49000, SERVER, 443))?.tgid).toBe(9);
  });

  test("the chain that is itself the oldest evicted for room: the new owner starts it again", () => {
    const join = new FlowProcesses(new ProcessCache({ readOnMiss: false }), undefined, {
      maxSockets: 2,
    });
    join.noteOwner(at(1, 101));
    join.noteOwner(at(2, 102));
    join.noteOwner(at(3, 103));
    expect(join.stats.evicted).toBe(2);
    expect(join.size).toBe(1);
    expect([1, 2, 3].map((h) => tgidOf(join, h))).toEqual([undefined, undefined, 103]);
  });
});

test("flow-join - trace, drop and policy verdict records carry the netns cookie where the join reads it", () => {
  for (const layout of [TRACE_LAYOUT, DROP_LAYOUT, POLICY_VERDICT_LAYOUT]) {
    expect(layout.fields.netns_cookie).toEqual({ offset: TRACE_NETNS_COOKIE, size: 8 });
  }
});
