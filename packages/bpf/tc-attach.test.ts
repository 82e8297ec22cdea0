import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readlinkSync } from "node:fs";
import { FLAG_TRUNCATED, OBS_FROM_NETWORK, OBS_TO_NETWORK } from "@periscope/wire";
import { BpfError, TraceProgram } from "./index.ts";
import {
  drainUntil,
  echoReplies,
  echoRequests,
  inNs,
  isRoot,
  loadedProgIds,
  run,
  tcProgIds,
  udpFrame,
  waitFor,
} from "./test-helpers.ts";

const id = Math.random().toString(16).slice(2, 8);
const nsA = `psct-${id}-a`;
const nsB = `psct-${id}-b`;
const ifA = `psa${id}`;
const ifB = `psb${id}`;
const ipA = "10.201.0.1";
const ipB = "10.201.0.2";

describe.skipIf(!isRoot)("bpf tc attach", () => {
  let ifindexA = 0;

  beforeAll(() => {
    run(["ip", "netns", "add", nsA]);
    run(["ip", "netns", "add", nsB]);
    run(["ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB]);
    run(["ip", "-n", nsA, "addr", "add", `${ipA}/24`, "dev", ifA]);
    run(["ip", "-n", nsB, "addr", "add", `${ipB}/24`, "dev", ifB]);
    for (const [ns, dev] of [
      [nsA, ifA],
      [nsB, ifB],
      [nsA, "lo"],
      [nsB, "lo"],
    ] as const) {
      run(["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    const links = JSON.parse(run(["ip", "-n", nsA, "-j", "link", "show", ifA])) as {
      ifindex: number;
    }[];
    ifindexA = links[0]?.ifindex ?? 0;
  });

  afterAll(() => {
    for (const ns of [nsA, nsB]) Bun.spawnSync(["ip", "netns", "del", ns]);
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
      expect([...(req?.data.subarray(26, 34) ?? [])]).toEqual([10, 201, 0, 1, 10, 201, 0, 2]);
      expect([...(rep?.data.subarray(26, 34) ?? [])]).toEqual([10, 201, 0, 2, 10, 201, 0, 1]);
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
      ids = [...tcProgIds(nsB, ifB, "ingress"), ...tcProgIds(nsB, ifB, "egress")];
      expect(ids.length).toBe(2);
      expect(ids.every((i) => loadedProgIds().has(i))).toBe(true);
    } finally {
      prog.close();
    }
    prog.close(); // repeated close is safe
    expect(tcProgIds(nsB, ifB, "ingress")).toEqual([]);
    expect(tcProgIds(nsB, ifB, "egress")).toEqual([]);
    expect(inNs(nsB, ["tc", "qdisc", "show", "dev", ifB])).not.toContain("clsact");
    // The kernel frees programs after an RCU grace period, not at close(2).
    const gone = () => {
      const loaded = loadedProgIds();
      return ids.every((i) => !loaded.has(i));
    };
    expect(await waitFor(gone)).toBe(true);
    expect(() => prog.drain(() => {})).toThrow(BpfError);
  });

  test.each([
    ["missing interface", { ifname: "psnone0", netns: nsA }, 19],
    ["missing netns", { ifname: "lo", netns: `psct-${id}-none` }, 2],
  ])("bpf tc - attach to a %s fails with BpfError and restores the netns", (_n, target, errno) => {
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
  });
});
