import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readlinkSync } from "node:fs";
import {
  createVethPair,
  ipv4Bytes,
  loadedProgIds,
  run,
  tcFilterProgIds,
  type VethPair,
  waitFor,
} from "@periscope/testing";
import { FLAG_TRUNCATED, OBS_FROM_NETWORK, OBS_TO_NETWORK } from "@periscope/wire";
import { BpfError, TraceProgram } from "./index.ts";
import { drainUntil, echoReplies, echoRequests, isRoot, udpFrame } from "./test-helpers.ts";

describe.skipIf(!isRoot)("bpf tc attach", () => {
  let pair: VethPair;
  let nsA = "";
  let nsB = "";
  let ifA = "";
  let ifB = "";
  let ipB = "";
  let ifindexA = 0;

  beforeAll(async () => {
    pair = await createVethPair();
    ({ nsA, nsB, ifA, ifB, ipB, ifindexA } = pair);
  });

  afterAll(async () => {
    await pair?.destroy();
  });

  test("bpf tc - records ping both ways on a veth inside a named netns", async () => {
    const selfNs = readlinkSync("/proc/thread-self/ns/net");
    const prog = TraceProgram.load({ captureLen: 64 });
    try {
      prog.attach({ ifname: ifA, netns: nsA });
      expect(readlinkSync("/proc/thread-self/ns/net")).toBe(selfNs);
      const ping = Bun.spawn([
        "ip",
        "netns",
        "exec",
        nsA,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        ipB,
      ]);
      expect(await ping.exited).toBe(0);

      const recs = await drainUntil(
        prog,
        (rs) => echoRequests(rs).length >= 3 && echoReplies(rs).length >= 3,
      );
      const requests = echoRequests(recs);
      const replies = echoReplies(recs);
      expect(requests.length).toBe(3);
      expect(replies.length).toBe(3);
      for (const r of [...requests, ...replies]) {
        expect(r.ifindex).toBe(ifindexA);
        expect(r.origLen).toBe(98); // 14 Ethernet + 20 IPv4 + 8 ICMP + 56 payload
        expect(r.capLen).toBe(64);
        expect(r.data.length).toBe(64);
        expect(r.flags & FLAG_TRUNCATED).toBe(FLAG_TRUNCATED);
        expect(r.l3Proto).toBe(0x0800);
        expect([...r.data.subarray(12, 15)]).toEqual([0x08, 0x00, 0x45]);
        expect(r.netnsCookie).not.toBe(0n);
        expect(r.flowHash).not.toBe(0);
      }
      expect(requests.every((r) => r.obsPoint === OBS_TO_NETWORK)).toBe(true);
      expect(replies.every((r) => r.obsPoint === OBS_FROM_NETWORK)).toBe(true);
      const req = requests[0];
      const rep = replies[0];
      const a = ipv4Bytes(pair.ipA);
      const b = ipv4Bytes(ipB);
      expect([...(req?.data.subarray(26, 34) ?? [])]).toEqual([...a, ...b]);
      expect([...(rep?.data.subarray(26, 34) ?? [])]).toEqual([...b, ...a]);
      expect(rep?.flowHash).toBe(req?.flowHash ?? -1);
      expect(rep?.netnsCookie).toBe(req?.netnsCookie ?? -1n);
      const arp = recs.filter((r) => r.l3Proto === 0x0806);
      expect(arp.every((r) => r.flowHash === 0)).toBe(true);
      expect(prog.readKernelLost()).toBe(0n);
      // The cookie is the device's netns: a test run here (host loopback) differs.
      prog.testRun(udpFrame(60), 1, "ingress");
      const [host] = await drainUntil(prog, (rs) => rs.length >= 1);
      expect(host?.ifindex).toBe(1);
      expect(host?.netnsCookie).not.toBe(req?.netnsCookie ?? 0n);
    } finally {
      prog.close();
    }
  });

  test("bpf tc - close leaves no tc filter, qdisc or program behind", async () => {
    const prog = TraceProgram.load();
    let ids: number[] = [];
    try {
      prog.attach({ ifname: ifB, netns: nsB });
      prog.attach({ ifname: ifB, netns: nsB }); // idempotent
      expect(prog.attachments()).toEqual([{ ifname: ifB, netns: nsB }]);
      ids = [
        ...(await tcFilterProgIds(nsB, ifB, "ingress")),
        ...(await tcFilterProgIds(nsB, ifB, "egress")),
      ];
      expect(ids.length).toBe(2);
      const loaded = await loadedProgIds();
      expect(ids.every((i) => loaded.has(i))).toBe(true);
    } finally {
      prog.close();
    }
    prog.close(); // repeated close is safe
    expect(await tcFilterProgIds(nsB, ifB, "ingress")).toEqual([]);
    expect(await tcFilterProgIds(nsB, ifB, "egress")).toEqual([]);
    const qdiscs = await run(["ip", "netns", "exec", nsB, "tc", "qdisc", "show", "dev", ifB]);
    expect(qdiscs.code).toBe(0);
    expect(qdiscs.stdout).not.toContain("clsact");
    // The kernel frees programs after an RCU grace period, not at close(2).
    await waitFor(
      async () => {
        const loaded = await loadedProgIds();
        return ids.every((i) => !loaded.has(i));
      },
      { what: "closed programs to be freed", timeoutMs: 5000 },
    );
    expect(() => prog.drain(() => {})).toThrow(BpfError);
  });

  test.each([
    ["missing interface", () => ({ ifname: "psnone0", netns: nsA }), 19],
    ["missing netns", () => ({ ifname: "lo", netns: "psct-none-x" }), 2],
  ])(
    "bpf tc - attach to a %s fails with BpfError and restores the netns",
    (_n, targetOf, errno) => {
      const target = targetOf();
      const selfNs = readlinkSync("/proc/thread-self/ns/net");
      const prog = TraceProgram.load();
      try {
        let caught: unknown;
        try {
          prog.attach(target);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(BpfError);
        expect((caught as BpfError).errno).toBe(errno);
        expect(prog.attachments()).toEqual([]);
        expect(readlinkSync("/proc/thread-self/ns/net")).toBe(selfNs);
      } finally {
        prog.close();
      }
    },
  );
});
