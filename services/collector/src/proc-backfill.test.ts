import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { netnsCookie, netnsCookieOfPid } from "@periscope/bpf";
import { createVethPair, type VethPair, waitForValue } from "@periscope/testing";
import { computeFlowHash, decodeSockOwnerRecord, SOCK_SOURCE } from "@periscope/wire";
import { backfillSocketOwners, parseProcNet } from "./proc-backfill.ts";

const isRoot = process.getuid?.() === 0;

test("proc backfill - parses /proc/net/tcp and tcp6 lines", () => {
  const v4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0200000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 12345 1`;
  expect(parseProcNet(v4, 4)).toEqual([
    {
      family: 4,
      saddr: Uint8Array.from([127, 0, 0, 1]),
      sport: 8080,
      daddr: Uint8Array.from([10, 0, 0, 2]),
      dport: 54321,
      state: 1,
      inode: 12345,
    },
  ]);
  const v6 = `  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 99 1`;
  const [s] = parseProcNet(v6, 6);
  expect([...(s?.saddr ?? [])]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
  expect(s?.inode).toBe(99);
});

describe.skipIf(!isRoot)("proc backfill (root, test namespaces)", () => {
  let pair: VethPair;
  beforeAll(async () => {
    pair = await createVethPair();
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  test("proc backfill - an established TCP connection is reported for both ends", async () => {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const server = Bun.spawn(
      ["ip", "netns", "exec", pair.nsB, "nc", "-l", "-s", pair.ipB, "-p", String(port)],
      { stdout: "pipe" },
    );
    let client: ReturnType<typeof Bun.spawn> | undefined;
    try {
      const found = await waitForValue(
        () => {
          client ??= Bun.spawn(["ip", "netns", "exec", pair.nsA, "nc", pair.ipB, String(port)], {
            stdin: "pipe",
            stdout: "pipe",
          });
          const r = backfillSocketOwners({
            netnsCookieOf: (pid) => netnsCookieOfPid(pid),
            nowBootNs: 1n,
          }).records.map(decodeSockOwnerRecord);
          const c = r.find((o) => o.tgid === client?.pid);
          const s = r.find((o) => o.tgid === server.pid);
          if (client.exitCode !== null) client = undefined; // not accepted yet: try again
          return c && s ? { c, s } : undefined;
        },
        { what: "both ends of the connection in the backfill" },
      );
      const { c, s } = found;
      expect(c).toMatchObject({ source: SOCK_SOURCE.BACKFILL, proto: 6, dport: port, comm: "nc" });
      expect(c.netnsCookie).toBe(netnsCookie(pair.nsA));
      expect(s).toMatchObject({ sport: port, dport: c.sport, comm: "nc" });
      expect(s.netnsCookie).toBe(netnsCookie(pair.nsB));
      const ipA = Uint8Array.from(pair.ipA.split(".").map(Number));
      const ipB = Uint8Array.from(pair.ipB.split(".").map(Number));
      expect([...c.saddr]).toEqual([...ipA]);
      expect(c.flowHash).toBe(computeFlowHash(ipA, c.sport, ipB, port, 6));
      expect(s.flowHash).toBe(c.flowHash);
      expect(c.startNs).toBeGreaterThan(0n);
    } finally {
      client?.kill();
      server.kill();
      await client?.exited;
      await server.exited;
    }
  });
});
