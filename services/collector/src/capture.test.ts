import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RecordSink } from "@periscope/bpf";
import {
  type Bus,
  captureSubjectAll,
  connectBus,
  decodeCaptureBatch,
  type RecordFilterSpec,
  type RecordReply,
  recordControlSubject,
} from "@periscope/bus";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import type { KernelCaptureFilter } from "@periscope/wire";
import type { AttachedDevice } from "./attacher.ts";
import { CaptureService, type CaptureSource } from "./capture.ts";

const NODE = "cap-node";
const log = createLogger("capture-test", "silent");
const filter: RecordFilterSpec = {
  family: 4,
  proto: 17,
  srcAddr: "10.0.0.1",
  srcPrefix: 32,
  dstAddr: "10.0.0.0",
  dstPrefix: 24,
  srcPort: 0,
  dstPort: 53,
};

/** A capture program stand-in: records what the service asks, hands out queued records. */
class FakeSource implements CaptureSource {
  attached = new Set<string>();
  filters: readonly KernelCaptureFilter[] = [];
  capLen = new Map<number, number>();
  queue: Uint8Array[] = [];
  lost = Array.from({ length: 32 }, () => 0n);
  closed = false;
  attach(t: { ifname: string }) {
    this.attached.add(t.ifname);
  }
  detach(t: { ifname: string }) {
    this.attached.delete(t.ifname);
  }
  setFilters(f: readonly KernelCaptureFilter[], c: ReadonlyMap<number, number>) {
    this.filters = f;
    this.capLen = new Map(c);
  }
  drainInto(sink: RecordSink): number {
    const n = this.queue.length;
    for (const r of this.queue.splice(0)) sink.addFrom(r, 0, r.length);
    return n;
  }
  readLost() {
    return [...this.lost];
  }
  close() {
    this.closed = true;
  }
}

/** A capture record for recording bits `bits` with `len` data bytes. */
function record(bits: number, len: number, fill: number): Uint8Array {
  const b = new Uint8Array(48 + len);
  const dv = new DataView(b.buffer);
  b[0] = 6;
  b[1] = 11;
  b[2] = 1;
  dv.setUint32(8, len + 10, true);
  dv.setUint32(12, len, true);
  dv.setBigUint64(16, 5n, true);
  dv.setUint32(24, 7, true);
  dv.setUint32(28, bits, true);
  b.fill(fill, 48);
  return b;
}

const dev = (name: string): AttachedDevice => ({
  name,
  target: { ifname: name },
  ifindex: 1,
  netnsCookie: 0n,
});

let nats: LocalNats;
let bus: Bus;
let source: FakeSource;
let service: CaptureService;

async function ask(body: unknown): Promise<RecordReply> {
  const m = await bus.nc.request(
    recordControlSubject(NODE),
    new TextEncoder().encode(JSON.stringify(body)),
    {
      timeout: 2000,
    },
  );
  return JSON.parse(new TextDecoder().decode(m.data)) as RecordReply;
}

beforeAll(async () => {
  nats = await startLocalNats();
  bus = await connectBus({ url: nats.url, name: "capture-test", log });
  source = new FakeSource();
  service = new CaptureService({
    nc: bus.nc,
    node: NODE,
    load: () => source,
    devices: () => [dev("eth0"), dev("eth1")],
    bootToRealtimeNs: () => 1_000n,
    metrics: createMetrics("collector_capture_test"),
    log,
    leaseCheckMs: 50,
  });
});

afterAll(async () => {
  service?.close();
  await bus?.close();
  await nats?.stop();
});

describe("capture service", () => {
  test("capture - start attaches and installs filters, packets go out per recording cut to its length, stop ends it", async () => {
    const got = new Map<string, ReturnType<typeof decodeCaptureBatch>[]>();
    for (const id of ["r-one", "r-two"]) {
      got.set(id, []);
      bus.nc.subscribe(captureSubjectAll(id), {
        callback: (_e, m) => {
          got.get(id)?.push(decodeCaptureBatch(m.data));
        },
      });
    }
    expect(
      await ask({ op: "start", id: "r-one", filters: [filter], capLen: 65535, leaseMs: 5000 }),
    ).toEqual({
      ok: true,
      node: NODE,
    });
    expect(
      await ask({ op: "start", id: "r-two", filters: [filter, filter], capLen: 4, leaseMs: 5000 }),
    ).toMatchObject({
      ok: true,
    });
    expect([...source.attached].sort()).toEqual(["eth0", "eth1"]);
    expect(source.filters.map((f) => f.slot)).toEqual([0, 1, 1]);
    expect(source.capLen).toEqual(
      new Map([
        [0, 65535],
        [1, 4],
      ]),
    );
    source.queue.push(record(0b11, 10, 0xaa), record(0b01, 6, 0xbb));
    source.lost[1] = 3n; // three packets of r-two lost in the kernel
    service.drainOnce();
    await waitFor(
      () => (got.get("r-one")?.length ?? 0) >= 1 && (got.get("r-two")?.length ?? 0) >= 1,
      {
        what: "batches",
      },
    );
    const one = got.get("r-one")?.[0];
    expect(
      one?.packets.map((p) => [p.data.length, p.origLen, p.tsNs, p.ifindex, p.obsPoint]),
    ).toEqual([
      [10, 20, 1005n, 7, 11],
      [6, 16, 1005n, 7, 11],
    ]);
    const two = got.get("r-two")?.[0];
    expect(two?.packets.map((p) => [...p.data])).toEqual([[0xaa, 0xaa, 0xaa, 0xaa]]);
    expect(two?.lost).toBe(3);
    const stopped = await ask({ op: "stop", id: "r-one" });
    expect(stopped).toEqual({
      ok: true,
      node: NODE,
      stats: { packets: 2, bytes: 16, kernelLost: 0 },
    });
    await waitFor(() => got.get("r-one")?.at(-1)?.final === true, { what: "final batch" });
    expect(got.get("r-one")?.at(-1)?.firstIndex).toBe(2);
    expect(await ask({ op: "stop", id: "r-two" })).toMatchObject({ ok: true });
    expect(source.attached.size).toBe(0);
    expect(source.filters).toEqual([]);
  });

  test("capture - a lease not renewed removes the filters", async () => {
    expect(
      await ask({ op: "start", id: "short", filters: [filter], capLen: 100, leaseMs: 200 }),
    ).toMatchObject({
      ok: true,
    });
    expect(source.attached.size).toBe(2);
    await Bun.sleep(100);
    expect(await ask({ op: "renew", id: "short" })).toMatchObject({ ok: true });
    await waitFor(() => service.active().length === 0, { timeoutMs: 2000, what: "lease expiry" });
    expect(source.attached.size).toBe(0);
    expect(await ask({ op: "renew", id: "short" })).toMatchObject({ ok: false, unknown: true });
  });

  test.each([
    ["request", "not json"],
    ["id", { op: "start", id: "UPPER", filters: [filter], capLen: 1, leaseMs: 1000 }],
    ["op", { op: "pause", id: "x" }],
    ["filters", { op: "start", id: "x", filters: [], capLen: 1, leaseMs: 1000 }],
    [
      "filters[0].srcAddr",
      { op: "start", id: "x", filters: [{ ...filter, srcAddr: "::1" }], capLen: 1, leaseMs: 1000 },
    ],
    [
      "filters[0].dstPort",
      { op: "start", id: "x", filters: [{ ...filter, dstPort: 70000 }], capLen: 1, leaseMs: 1000 },
    ],
    ["capLen", { op: "start", id: "x", filters: [filter], capLen: 0, leaseMs: 1000 }],
    ["leaseMs", { op: "start", id: "x", filters: [filter], capLen: 1, leaseMs: 5 }],
  ])("capture - bad request refused naming %s", async (field, body) => {
    const m = await bus.nc.request(
      recordControlSubject(NODE),
      new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body)),
      { timeout: 2000 },
    );
    const r = JSON.parse(new TextDecoder().decode(m.data)) as RecordReply;
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.startsWith(field === "request" ? "" : `${field}: `)).toBe(true);
    expect(service.active()).toEqual([]);
  });

  test("capture - at most 64 filters on a node", async () => {
    const many = Array.from({ length: 40 }, () => filter);
    expect(
      await ask({ op: "start", id: "a", filters: many, capLen: 1, leaseMs: 5000 }),
    ).toMatchObject({ ok: true });
    const r = await ask({ op: "start", id: "b", filters: many, capLen: 1, leaseMs: 5000 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toStartWith("filters: 64 filters at most");
    await ask({ op: "stop", id: "a" });
  });
});
