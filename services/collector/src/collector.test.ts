import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { TraceProgram } from "@periscope/bpf";
import { sanitizeToken } from "@periscope/bus";
import type { RawFrame } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  createVethPair,
  type LocalNats,
  loadedProgIds,
  runOk,
  startLocalNats,
  tcFilterProgIds,
  type VethPair,
  waitForValue,
} from "@periscope/testing";
import {
  decodeRawFrame,
  decodeTraceRecord,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  rawFrameRecords,
  TRACE_FIXED_SIZE,
} from "@periscope/wire";
import { type Collector, startCollector } from "./collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "./config.ts";

const canRun = process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT);
const MAIN = resolve(import.meta.dir, "main.ts");
const ICMP = 1;

/** Every frame published on periscope.raw.<node>.> while subscribed. */
class FrameLog {
  readonly frames: RawFrame[] = [];
  readonly #sub: Subscription;
  constructor(nc: NatsConnection, node: string) {
    this.#sub = nc.subscribe(`periscope.raw.${sanitizeToken(node)}.>`, {
      callback: (err, msg) => {
        if (err) throw err;
        // One list of records per frame, whichever field carries them.
        const frame = decodeRawFrame(msg.data);
        frame.records = rawFrameRecords(frame).records;
        this.frames.push(frame);
      },
    });
  }
  /** ICMP echo records (type 8 request, 0 reply) as [obsPoint, ifindex, icmpType]. */
  echoes(): [number, number, number][] {
    const out: [number, number, number][] = [];
    for (const f of this.frames) {
      for (const bytes of f.records) {
        const rec = decodeTraceRecord(bytes);
        const d = rec.data;
        // Ethernet (14) + IPv4 with IHL 5 (20): protocol at 23, ICMP type at 34.
        if (d.length >= 35 && d[12] === 0x08 && d[13] === 0 && d[23] === ICMP) {
          out.push([rec.obsPoint, rec.ifindex, d[34] ?? -1]);
        }
      }
    }
    return out;
  }
  close(): void {
    this.#sub.unsubscribe();
  }
}

/** Each partition's seqs are 1, 2, … with no gap, and every frame has the same boot id. */
function expectContiguous(frames: RawFrame[], bootId: string): void {
  const byPartition = new Map<number, bigint[]>();
  for (const f of frames) {
    expect(f.bootId).toBe(bootId);
    byPartition.set(f.partition, [...(byPartition.get(f.partition) ?? []), f.seq]);
  }
  expect(byPartition.size).toBeGreaterThan(0);
  for (const seqs of byPartition.values()) {
    expect(seqs).toEqual(seqs.map((_, i) => BigInt(i + 1)));
  }
}

async function expectDetached(pair: VethPair, progIds: number[]): Promise<void> {
  expect(await tcFilterProgIds(pair.nsA, pair.ifA, "ingress")).toEqual([]);
  expect(await tcFilterProgIds(pair.nsA, pair.ifA, "egress")).toEqual([]);
  // The kernel frees a program after its last reference goes, asynchronously (RCU).
  const left = await waitForValue(
    async () => {
      const loaded = await loadedProgIds();
      const still = progIds.filter((id) => loaded.has(id));
      return still.length === 0 ? still : undefined;
    },
    { what: "programs to be freed" },
  );
  expect(left).toEqual([]);
}

async function attachedProgIds(pair: VethPair): Promise<number[]> {
  return waitForValue(
    async () => {
      const ids = [
        ...(await tcFilterProgIds(pair.nsA, pair.ifA, "ingress")),
        ...(await tcFilterProgIds(pair.nsA, pair.ifA, "egress")),
      ];
      return ids.length === 2 ? ids : undefined;
    },
    { what: "tc filters on both hooks" },
  );
}

describe.skipIf(!canRun)("collector (root, real kernel and nats-server)", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  let pair: VethPair;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
    pair = await createVethPair();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await pair?.destroy();
    await nc?.close();
    await nats?.stop();
  });

  const ping = (count: number) =>
    runOk([
      "ip",
      "netns",
      "exec",
      pair.nsA,
      "ping",
      "-c",
      String(count),
      "-i",
      "0.05",
      "-W",
      "2",
      pair.ipB,
    ]);

  test("collector - publishes ping records with seq 1,2,… and detaches on stop", async () => {
    const node = `psct-node-${pair.nsA}`;
    const log = new FrameLog(nc, node);
    cleanups.push(async () => log.close());
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        `--interfaces=${pair.nsA}/${pair.ifA}`,
        "--ops-addr=127.0.0.1:0",
        "--aggregation=none", // these tests count every packet
        "--partitions=2",
        "--frame-max-records=2",
        "--frame-max-delay-ms=20",
        "--log-level=warn",
        "--drops=off",
      ],
      {},
    );
    const collector: Collector = await startCollector(config, {
      log: createLogger("collector", "warn"),
    });
    cleanups.push(() => collector.stop());
    expect(collector.attached()).toEqual([`${pair.nsA}/${pair.ifA}`]);
    const progIds = await attachedProgIds(pair);

    await ping(4);
    const echoes = await waitForValue(
      () => {
        const e = log.echoes();
        return e.filter((x) => x[2] === 8).length >= 4 && e.filter((x) => x[2] === 0).length >= 4
          ? e
          : undefined;
      },
      { what: "4 requests and 4 replies" },
    );
    // Requests leave ifA (egress, TO_NETWORK); replies arrive on it (ingress, FROM_NETWORK).
    for (const [obs, ifindex, type] of echoes) {
      expect(ifindex).toBe(pair.ifindexA);
      expect(obs).toBe(type === 8 ? OBS_TO_NETWORK : OBS_FROM_NETWORK);
    }
    for (const f of log.frames) {
      for (const r of f.records) expect(r.length).toBeGreaterThanOrEqual(TRACE_FIXED_SIZE);
      const hashes = f.records.map((r) => decodeTraceRecord(r).flowHash % 2);
      expect(hashes.every((p) => p === f.partition)).toBe(true);
    }
    expectContiguous(log.frames, collector.bootId);

    const metrics = await (await fetch(`http://127.0.0.1:${collector.opsPort}/metrics`)).text();
    expect(metrics).toContain("periscope_collector_attached_interfaces 1");
    expect(metrics).toMatch(/periscope_collector_events_published_total [1-9]/);
    expect(collector.stats().eventsRead).toBeGreaterThanOrEqual(8);

    await collector.stop();
    await expectDetached(pair, progIds);
    const stats = collector.stats();
    expect(stats.kernelLost + stats.queueLost + stats.publishLost).toBe(0);
    expect(stats.eventsPublished).toBe(stats.eventsRead);
  });

  test("collector - attach failure of a missing interface is counted, not fatal", async () => {
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        "--node-name=psct-missing",
        `--interfaces=${pair.nsA}/nosuchdev0,${pair.nsA}/${pair.ifA}`,
        "--ops-addr=127.0.0.1:0",
        "--aggregation=none", // these tests count every packet
        "--log-level=silent",
        "--drops=off",
        "--attach-retry-ms=100",
      ],
      {},
    );
    const collector = await startCollector(config, { log: createLogger("collector", "silent") });
    cleanups.push(() => collector.stop());
    expect(collector.attached()).toEqual([`${pair.nsA}/${pair.ifA}`]);
    const errors = await waitForValue(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${collector.opsPort}/metrics`)).text();
        const n = Number(/periscope_collector_attach_errors_total (\d+)/.exec(text)?.[1] ?? 0);
        return n >= 2 ? n : undefined;
      },
      { what: "two attach attempts" },
    );
    expect(errors).toBeGreaterThanOrEqual(2);
    const progIds = await attachedProgIds(pair);
    await collector.stop();
    await expectDetached(pair, progIds);
  });

  test("collector - ring buffer overflow is reported as kernel_lost in frames", async () => {
    const node = "psct-lost";
    const log = new FrameLog(nc, node);
    cleanups.push(async () => log.close());
    // One page of ring buffer holds ~20 records of 184 bytes; one test_run call writes 2000.
    const program = TraceProgram.load({ ringBufferBytes: 4096 });
    cleanups.push(async () => program.close());
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        "--ops-addr=127.0.0.1:0",
        "--aggregation=none",
        // Kernel drops anywhere on the machine share the ring: off, so the count is exact.
        "--drops=off",
      ],
      {},
    );
    const collector = await startCollector(config, {
      program,
      log: createLogger("collector", "silent"),
    });
    cleanups.push(() => collector.stop());
    const packet = new Uint8Array(60);
    packet.set([0x08, 0x00], 12);
    program.testRun(packet, 2000, "ingress");
    const total = () =>
      log.frames.reduce((n, f) => n + f.records.length + Number(f.kernelLost + f.collectorLost), 0);
    await waitForValue(() => (total() >= 2000 ? true : undefined), {
      what: "2000 records delivered or counted lost",
    });
    expect(total()).toBe(2000);
    const kernelLost = log.frames.reduce((n, f) => n + f.kernelLost, 0n);
    expect(kernelLost).toBeGreaterThan(0n);
    expect(log.frames.filter((f) => f.kernelLost > 0n).every((f) => f.partition === 0)).toBe(true);
    expect(Number(kernelLost)).toBe(collector.stats().kernelLost);
  });

  test("collector - a child process exits 0 on SIGTERM, flushing frames and detaching", async () => {
    const node = `psct-child-${pair.nsA}`;
    const log = new FrameLog(nc, node);
    cleanups.push(async () => log.close());
    const child = Bun.spawn(
      [
        process.execPath,
        MAIN,
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        `--interfaces=${pair.nsA}/${pair.ifA}`,
        "--ops-addr=127.0.0.1:0",
        "--aggregation=none", // these tests count every packet
        "--frame-max-delay-ms=60000",
        "--log-level=info",
        "--drops=off",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await child.exited;
    });
    const stdout = new Response(child.stdout).text();
    const progIds = await attachedProgIds(pair);
    await ping(2);
    // Frames only seal after 60 s, so everything below arrives through the shutdown flush.
    child.kill("SIGTERM");
    const code = await Promise.race([child.exited, Bun.sleep(15_000).then(() => "timeout")]);
    expect(code).toBe(0);
    await waitForValue(() => (log.echoes().length >= 4 ? true : undefined), {
      what: "flushed echo records",
    });
    const bootIds = new Set(log.frames.map((f) => f.bootId));
    expect(bootIds.size).toBe(1);
    expectContiguous(log.frames, [...bootIds][0] ?? "");
    await expectDetached(pair, progIds);
    expect(await stdout).toContain("collector stopped");
  });
});
