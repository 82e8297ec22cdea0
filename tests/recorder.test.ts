/**
 * Recorder end to end: a real nats-server, two collectors (one per pod, so one file per
 * node), the recorder and observer as processes, real traffic between pod namespaces.
 * Files are parsed here and read by tshark; the kernel capture filters are checked with tc.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { recorder } from "@periscope/proto";
import { runOk, tcFilterProgIds, waitFor } from "@periscope/testing";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

const NODE_A = "rec-a";
const NODE_B = "rec-b";
let stack: Stack;
let client: ReturnType<typeof createClient<typeof recorder.Recorder>>;
let cIp: string;
let sIp: string;
let cIp6: string;
let sIp6: string;

interface PcapRecord {
  tsNs: bigint;
  inclLen: number;
  origLen: number;
  data: Uint8Array;
}

/** Parses a nanosecond pcap file (checks magic and link type). */
function readPcap(path: string, linktype = 1): PcapRecord[] {
  const b = new Uint8Array(readFileSync(path));
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(dv.getUint32(0, true)).toBe(0xa1b23c4d);
  expect(dv.getUint32(20, true)).toBe(linktype);
  const out: PcapRecord[] = [];
  let at = 24;
  while (at < b.length) {
    const inclLen = dv.getUint32(at + 8, true);
    out.push({
      tsNs: BigInt(dv.getUint32(at, true)) * 1_000_000_000n + BigInt(dv.getUint32(at + 4, true)),
      inclLen,
      origLen: dv.getUint32(at + 12, true),
      data: b.slice(at + 16, at + 16 + inclLen),
    });
    at += 16 + inclLen;
  }
  expect(at).toBe(b.length);
  return out;
}

/** UDP payload of an Ethernet + IPv4/IPv6 + UDP frame. */
function udpPayload(frame: Uint8Array): Uint8Array {
  const v6 = frame[12] === 0x86 && frame[13] === 0xdd;
  return frame.subarray(v6 ? 14 + 40 + 8 : 14 + 20 + 8);
}

/** Sends UDP datagrams from `pod` (fixed source port) and waits until all left. */
async function sendUdp(
  pod: string,
  dst: string,
  dport: number,
  sport: number,
  payloads: string[],
): Promise<void> {
  // Blocking sendto() from one socket: every datagram has left when the sender exits.
  const script = [
    "import socket, sys, json",
    `s = socket.socket(socket.AF_INET6 if ":" in ${JSON.stringify(dst)} else socket.AF_INET, socket.SOCK_DGRAM)`,
    `s.bind(("", ${sport}))`,
    `for p in json.loads(sys.argv[1]): s.sendto(p.encode(), (${JSON.stringify(dst)}, ${dport}))`,
  ].join("\n");
  await stack.topology.exec(pod, ["/usr/bin/python3", "-c", script, JSON.stringify(payloads)]);
}

function payloads(tag: string, n: number, size = 0): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${i}-`.padEnd(Math.max(size, 8), "x"));
}

function filter(init: {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  proto?: recorder.Protocol;
}) {
  return create(recorder.FilterSchema, {
    sourceCidr: init.src,
    destinationCidr: init.dst,
    sourcePort: init.sport ?? 0,
    destinationPort: init.dport ?? 0,
    protocol: init.proto ?? recorder.Protocol.ANY,
  });
}

/** UDP from the client pod's address to the server pod's, to `dport` (and from `sport`). */
function clientUdp(dport: number, sport?: number) {
  return filter({
    src: `${cIp}/32`,
    dst: `${sIp}/32`,
    ...(sport === undefined ? {} : { sport }),
    dport,
    proto: recorder.Protocol.UDP,
  });
}

/** tshark's `-T fields` rows of the pcap at `path` (`fields` tab-separated), after display filter `filter`. */
async function tsharkRows(path: string, fields: string[], filter?: string): Promise<string[]> {
  const out = await runOk([
    ...["tshark", "-r", path, ...(filter === undefined ? [] : ["-Y", filter])],
    ...["-T", "fields", ...fields.flatMap((f) => ["-e", f])],
  ]);
  return out.trim().split("\n");
}

interface Run {
  /** Resolves with the first running response (capture is on everywhere). */
  readonly running: Promise<void>;
  /** Sends StopRecording. */
  stop(): void;
  /** Every response, once the call ended. */
  readonly done: Promise<recorder.RecordResponse[]>;
}

/** Starts one Record call. */
function record(start: recorder.StartRecording, c = client): Run {
  let stopNow: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    stopNow = r;
  });
  async function* requests() {
    yield create(recorder.RecordRequestSchema, { requestType: { case: "start", value: start } });
    await stopped;
    yield create(recorder.RecordRequestSchema, {
      requestType: { case: "stop", value: create(recorder.StopRecordingSchema) },
    });
  }
  let onRunning: () => void = () => {};
  let onFail: (err: unknown) => void = () => {};
  const running = new Promise<void>((res, rej) => {
    onRunning = res;
    onFail = rej;
  });
  running.catch(() => {}); // callers awaiting it see the failure; others read it from `done`
  const done = (async () => {
    const out: recorder.RecordResponse[] = [];
    try {
      for await (const r of c.record(requests())) {
        out.push(r);
        if (r.responseType.case === "running") onRunning();
      }
    } catch (err) {
      onFail(err);
      throw err;
    } finally {
      stopNow();
    }
    onRunning();
    return out;
  })();
  return { running, stop: stopNow, done };
}

function stoppedOf(rs: recorder.RecordResponse[]) {
  return rs.flatMap((r) =>
    r.responseType.case === "stopped"
      ? [
          {
            node: r.nodeName,
            path: r.responseType.value.filesink?.filePath ?? "",
            stats: r.responseType.value.stats,
          },
        ]
      : [],
  );
}

function start(init: {
  prefix?: string;
  include: recorder.Filter[];
  maxLen?: number;
  packets?: number;
  bytes?: number;
  timeMs?: number;
}) {
  return create(recorder.StartRecordingSchema, {
    filesink: { filePrefix: init.prefix ?? "" },
    include: init.include,
    maxCaptureLength: init.maxLen ?? 0,
    stopCondition: {
      packetsCapturedCount: BigInt(init.packets ?? 0),
      bytesCapturedCount: BigInt(init.bytes ?? 0),
      ...(init.timeMs !== undefined ? { timeElapsed: durationFromMs(init.timeMs) } : {}),
    },
  });
}

async function captureFilters(pod: string): Promise<number> {
  const netns = stack.topology.pod(pod).netns;
  return (await tcFilterProgIds(netns, "eth0", "egress")).length;
}

/**
 * Waits until capture runs on both pods' devices: a collector whose first heartbeat the
 * recorder had not seen yet joins the recording at its next renewal.
 */
async function capturing(): Promise<void> {
  await waitFor(
    async () => (await captureFilters("client")) === 2 && (await captureFilters("server")) === 2,
    { timeoutMs: 10_000, intervalMs: 50, what: "capture on both nodes" },
  );
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "client" }, { name: "server" }],
    nodes: [
      { name: NODE_A, pods: ["client"] },
      { name: NODE_B, pods: ["server"] },
    ],
  });
  const t = stack.topology;
  cIp = t.pod("client").ipv4;
  sIp = t.pod("server").ipv4;
  cIp6 = t.pod("client").ipv6;
  sIp6 = t.pod("server").ipv6;
  for (const n of [NODE_A, NODE_B]) {
    await waitFor(
      async () =>
        (await stack.metric(`collector-${n}`, "periscope_collector_attached_interfaces")) === 1,
      { timeoutMs: 20_000, what: `collector ${n} attached` },
    );
  }
  client = createClient(
    recorder.Recorder,
    createGrpcTransport({ baseUrl: `http://${stack.recorderAddr}` }),
  );
  // Neighbour entries first, so no ARP/ND packet lands between the ones counted.
  await t.exec("client", ["ping", "-c", "1", "-W", "2", sIp]);
  await t.exec("client", ["ping", "-c", "1", "-W", "2", sIp6]);
}, 90_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("recorder", () => {
  test("recorder - a 5-tuple filter captures exactly the matching datagrams on both nodes, byte for byte", async () => {
    const t0 = BigInt(Date.now()) * 1_000_000n;
    const run = record(
      start({
        prefix: "exact",
        include: [clientUdp(7001, 40001)],
      }),
    );
    await run.running;
    // Capture is on: the program sits beside the trace program on both devices.
    await capturing();
    const sent = payloads("match", 20, 100).map((p, i) => p.slice(0, 50 + i * 20));
    await sendUdp("client", sIp, 7001, 40001, sent);
    await sendUdp("client", sIp, 7009, 40001, payloads("otherport", 5));
    await sendUdp("client", sIp, 7001, 40002, payloads("othersrc", 5));
    // Stats reach 40 (20 per node) before stopping.
    run.stop();
    const files = stoppedOf(await run.done);
    expect(files.map((f) => f.node).sort()).toEqual([NODE_A, NODE_B]);
    const t1 = BigInt(Date.now()) * 1_000_000n;
    for (const f of files) {
      expect(basename(f.path)).toMatch(new RegExp(`^exact_\\d{10}_[0-9a-f]+_${f.node}\\.pcap$`));
      expect(f.path.startsWith(stack.recordingsDir)).toBe(true);
      const recs = readPcap(f.path);
      expect(recs.map((r) => new TextDecoder().decode(udpPayload(r.data)))).toEqual(sent);
      for (const [i, r] of recs.entries()) {
        expect(r.inclLen).toBe(14 + 20 + 8 + (sent[i] as string).length);
        expect(r.origLen).toBe(r.inclLen);
        expect(r.tsNs).toBeGreaterThan(t0);
        expect(r.tsNs).toBeLessThan(t1);
        if (i > 0) expect(r.tsNs).toBeGreaterThanOrEqual((recs[i - 1] as PcapRecord).tsNs);
      }
      expect(Number(f.stats?.packetsCaptured)).toBe(20);
      expect(Number(f.stats?.packetsLost)).toBe(0);
      // tshark reads it: same count, lengths and ports.
      const rows = await tsharkRows(f.path, ["frame.len", "udp.srcport", "udp.dstport"]);
      expect(rows).toEqual(sent.map((p) => `${42 + p.length}\t40001\t7001`));
    }
    // Capture is off again: only the trace program's filter is left.
    await waitFor(
      async () => (await captureFilters("client")) === 1 && (await captureFilters("server")) === 1,
      {
        timeoutMs: 5000,
        what: "capture filters removed",
      },
    );
  }, 60_000);

  test("recorder - stop conditions: packets, bytes and time, whichever comes first", async () => {
    const f = clientUdp(7010);
    // Packets: 7 in total over both nodes, however many are sent.
    const byPackets = record(start({ prefix: "bypackets", include: [f], packets: 7 }));
    await byPackets.running;
    await capturing();
    await sendUdp("client", sIp, 7010, 40010, payloads("p", 20, 58));
    const pFiles = stoppedOf(await byPackets.done);
    const pTotal = pFiles.reduce((n, x) => n + readPcap(x.path).length, 0);
    expect(pTotal).toBe(7);
    expect(pFiles.reduce((n, x) => n + Number(x.stats?.packetsCaptured), 0)).toBe(7);
    // Bytes: frames are 100 bytes; at least 450 bytes means the 5th frame ends it.
    const byBytes = record(start({ prefix: "bybytes", include: [f], bytes: 450 }));
    await byBytes.running;
    await capturing();
    await sendUdp("client", sIp, 7010, 40011, payloads("b", 20, 58));
    const bFiles = stoppedOf(await byBytes.done);
    const bRecs = bFiles.flatMap((x) => readPcap(x.path));
    expect(bRecs.length).toBe(5);
    expect(bRecs.reduce((n, r) => n + r.inclLen, 0)).toBe(500);
    // Time: 1.5 s with no traffic.
    const began = performance.now();
    const byTime = record(start({ prefix: "bytime", include: [f], timeMs: 1500 }));
    const tFiles = stoppedOf(await byTime.done);
    const took = performance.now() - began;
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(5000);
    expect(tFiles.length).toBe(2);
    for (const x of tFiles) expect(readPcap(x.path)).toEqual([]);
  }, 60_000);

  test("recorder - two overlapping recordings each get their packets, with their own capture length", async () => {
    const a = record(
      start({
        prefix: "overa",
        include: [
          filter({ src: "0.0.0.0/0", dst: `${sIp}/32`, dport: 7020, proto: recorder.Protocol.UDP }),
        ],
      }),
    );
    const b = record(
      start({
        prefix: "overb",
        include: [filter({ src: `${cIp}/32`, dst: `${sIp}/32` })],
        maxLen: 64,
      }),
    );
    await Promise.all([a.running, b.running]);
    await capturing();
    const p1 = payloads("one", 10, 200);
    const p2 = payloads("two", 10, 200);
    await sendUdp("client", sIp, 7020, 40020, p1);
    await sendUdp("client", sIp, 7021, 40021, p2);
    a.stop();
    b.stop();
    const [fa, fb] = [stoppedOf(await a.done), stoppedOf(await b.done)];
    for (const f of fa) {
      const recs = readPcap(f.path);
      expect(recs.map((r) => new TextDecoder().decode(udpPayload(r.data)))).toEqual(p1);
    }
    for (const f of fb) {
      const recs = readPcap(f.path).filter((r) => r.data[23] === 17);
      expect(recs.length).toBe(20);
      for (const r of recs) {
        expect(r.inclLen).toBe(64);
        expect(r.origLen).toBe(42 + 200);
      }
      expect(await tsharkRows(f.path, ["frame.cap_len", "frame.len"], "udp")).toEqual(
        Array(20).fill("64\t242"),
      );
    }
  }, 60_000);

  test("recorder - IPv6 5-tuple", async () => {
    const run = record(
      start({
        prefix: "six",
        include: [
          filter({
            src: `${cIp6}/128`,
            dst: "fd00:200::/64",
            dport: 7030,
            proto: recorder.Protocol.UDP,
          }),
        ],
      }),
    );
    await run.running;
    await capturing();
    const sent = payloads("v6", 6, 30);
    await sendUdp("client", sIp6, 7030, 40030, sent);
    await sendUdp("client", sIp, 7030, 40031, payloads("v4", 3)); // IPv4: not matched
    run.stop();
    for (const f of stoppedOf(await run.done)) {
      const recs = readPcap(f.path);
      expect(recs.map((r) => [r.data[12], r.data[13]])).toEqual(Array(6).fill([0x86, 0xdd]));
      expect(recs.map((r) => new TextDecoder().decode(udpPayload(r.data)))).toEqual(sent);
      expect(await tsharkRows(f.path, ["ipv6.src", "udp.dstport"])).toEqual(
        Array(6).fill(`${cIp6}\t7030`),
      );
    }
  }, 60_000);

  test.each([
    [
      "filesink.file_prefix",
      start({ prefix: "Bad_Prefix", include: [filter({ src: "0.0.0.0/0", dst: "0.0.0.0/0" })] }),
    ],
    [
      "filesink.file_prefix",
      start({
        prefix: "a23456789012345678901",
        include: [filter({ src: "0.0.0.0/0", dst: "0.0.0.0/0" })],
      }),
    ],
    [
      "include[0].source_cidr",
      start({ include: [filter({ src: "10.0.0.0/33", dst: "0.0.0.0/0" })] }),
    ],
    [
      "include[1].destination_cidr",
      start({
        include: [
          filter({ src: "::/0", dst: "::/0" }),
          filter({ src: "0.0.0.0/0", dst: "nonsense" }),
        ],
      }),
    ],
    [
      "include[0].destination_cidr",
      start({ include: [filter({ src: "0.0.0.0/0", dst: "::/0" })] }),
    ],
    [
      "include[0].destination_port",
      start({ include: [filter({ src: "0.0.0.0/0", dst: "0.0.0.0/0", dport: 70000 })] }),
    ],
    [
      "include[0].protocol",
      start({
        include: [filter({ src: "0.0.0.0/0", dst: "0.0.0.0/0", proto: 99 as recorder.Protocol })],
      }),
    ],
    ["include", start({ include: [] })],
  ])("recorder - bad input is InvalidArgument naming %s", async (field, req) => {
    const run = record(req);
    const err = await run.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage.startsWith(`${field}: `)).toBe(true);
  });

  test("recorder - reachable through the observer's address, errors included", async () => {
    const viaObserver = createClient(
      recorder.Recorder,
      createGrpcTransport({ baseUrl: `http://${stack.observerAddr}` }),
    );
    const f = clientUdp(7050);
    const run = record(start({ prefix: "proxied", include: [f], packets: 3 }), viaObserver);
    await run.running;
    await capturing();
    await sendUdp("client", sIp, 7050, 40050, payloads("o", 5, 40));
    const files = stoppedOf(await run.done);
    expect(files.flatMap((x) => readPcap(x.path)).length).toBe(3);
    const bad = record(start({ prefix: "9lives", include: [f] }), viaObserver);
    const err = await bad.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toStartWith("filesink.file_prefix: ");
  }, 60_000);

  test("recorder - periscope record through the observer stops at its packet limit and prints the files", async () => {
    const cli = Bun.spawn(
      [
        process.execPath,
        "run",
        `${ROOT}/cli/src/main.ts`,
        "record",
        `${cIp}/32 0 ${sIp}/32 7060 UDP`,
        "--file-prefix",
        "cli",
        "--packet-limit",
        "4",
        "--server",
        stack.observerAddr,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const lines: string[] = [];
    const reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of cli.stdout) lines.push(...dec.decode(chunk).split("\n"));
    })();
    await waitFor(() => lines.includes("Started recording. Press Ctrl-C to stop."), {
      timeoutMs: 15_000,
      what: "recording started",
    });
    await capturing();
    await sendUdp("client", sIp, 7060, 40060, payloads("c", 6, 30));
    expect(await cli.exited).toBe(0);
    await reading;
    expect(lines).toContain("Stopped recording: 4 packets (288 bytes) captured, 0 lost.");
    const files = lines
      .filter((l) => /^rec-[ab]: \//.test(l))
      .map((l) => l.replace(/^rec-[ab]: /, ""));
    expect(files.length).toBe(2);
    expect(files.flatMap((f) => readPcap(f)).length).toBe(4);
  }, 60_000);

  test("recorder - a collector killed mid-recording leaves a filter its restart removes", async () => {
    const run = record(
      start({
        prefix: "colkill",
        include: [clientUdp(7070)],
      }),
    );
    await run.running;
    await capturing();
    expect(await captureFilters("client")).toBe(2);
    const name = `collector-${NODE_A}`;
    const pid = stack.sup.get(name)?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    const exited = stack.sup.get(name)?.exited;
    process.kill(pid, "SIGKILL");
    await exited;
    run.stop();
    const files = stoppedOf(await run.done);
    expect(files.map((f) => f.node).sort()).toEqual([NODE_A, NODE_B]);
    // Nobody removed the dead collector's capture filter: its restart does.
    expect(await captureFilters("client")).toBe(2);
    stack.restart(name);
    await waitFor(async () => (await captureFilters("client")) === 1, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "stale capture filter removed by the restarted collector",
    });
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${stack.ops[name]}/readyz`).catch(() => undefined))?.ok ===
        true,
      { timeoutMs: 20_000, what: "collector back" },
    );
  }, 60_000);

  test("recorder - killed mid-recording: kernel filters removed within seconds, partial file readable", async () => {
    const run = record(
      start({
        prefix: "killed",
        include: [clientUdp(7040)],
      }),
    );
    run.done.catch(() => {}); // the call fails when the recorder dies
    await run.running;
    await capturing();
    await sendUdp("client", sIp, 7040, 40040, payloads("k", 10, 80));
    // Written before the kill: the files hold the 10 packets.
    const glob = new Bun.Glob("killed_*.pcap");
    await waitFor(
      () => {
        const files = [...glob.scanSync(stack.recordingsDir)];
        return (
          files.length === 2 &&
          files.every((f) => readPcap(`${stack.recordingsDir}/${f}`).length === 10)
        );
      },
      { timeoutMs: 10_000, what: "10 packets in both files" },
    );
    expect(await captureFilters("client")).toBe(2);
    const pid = stack.sup.get("recorder")?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    const killedAt = performance.now();
    process.kill(pid, "SIGKILL");
    await waitFor(
      async () => (await captureFilters("client")) === 1 && (await captureFilters("server")) === 1,
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: "capture filters removed after the recorder died",
      },
    );
    const took = performance.now() - killedAt;
    expect(took).toBeLessThan(6000);
    expect(
      await stack.metric(`collector-${NODE_A}`, "periscope_collector_capture_recordings"),
    ).toBe(0);
    for (const f of glob.scanSync(stack.recordingsDir)) {
      expect(await tsharkRows(`${stack.recordingsDir}/${f}`, ["udp.dstport"])).toEqual(
        Array(10).fill("7040"),
      );
    }
    stack.restart("recorder");
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${stack.ops.recorder}/readyz`).catch(() => undefined))
          ?.ok === true,
      {
        timeoutMs: 20_000,
        what: "recorder back",
      },
    );
  }, 60_000);
});
