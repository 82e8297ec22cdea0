/**
 * Worker thread of bench/datapath.ts: consumes the raw stream through a durable JetStream
 * consumer, acknowledges every frame and counts its records by type and the losses it
 * reports, on a thread (and NATS connection) of its own so the collector's thread does
 * only the collector's work.
 */

import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { RAW_STREAM } from "@periscope/bus";
import { PACKED_HEADER_SIZE, packedSize, RECORD_TYPE_TRACE } from "@periscope/wire";

/** Main thread → worker. */
export type ConsumerRequest =
  | { type: "start"; url: string; durable: string; subjectPrefix: string }
  | { type: "counts" }
  | { type: "stop" };

/** What the consumer saw, from a light walk of each RawFrame's fields. */
export interface ConsumerCounts {
  frames: number;
  /** Trace records (type 4). */
  records: number;
  /** Records of other types (the program's debug events). */
  other: number;
  kernelLost: number;
  collectorLost: number;
  /** performance.timeOrigin + performance.now() of the last frame, ms. */
  lastAtMs: number;
  /** CPU time of this thread so far, ms. */
  threadCpuMs: number;
}

/** Worker → main thread. */
export type ConsumerReply =
  | { type: "ready" }
  | { type: "counts"; counts: ConsumerCounts }
  | { type: "stopped" }
  | { type: "error"; message: string };

declare const self: Worker;

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const byte = b[pos++] as number;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
}

function countRecord(type: number | undefined, into: ConsumerCounts): void {
  if (type === RECORD_TYPE_TRACE) into.records++;
  else into.other++;
}

/** Counts records by type (field 8, packed field 12) and the loss fields (6, 7). */
export function countFrame(b: Uint8Array, into: ConsumerCounts): void {
  let pos = 0;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (pos < b.length) {
    let key: number;
    [key, pos] = readVarint(b, pos);
    const field = key >>> 3;
    if ((key & 7) === 0) {
      let v: number;
      [v, pos] = readVarint(b, pos);
      if (field === 6) into.kernelLost += v;
      else if (field === 7) into.collectorLost += v;
    } else {
      let len: number;
      [len, pos] = readVarint(b, pos);
      if (field === 8) countRecord(b[pos], into);
      if (field === 12) {
        for (let off = pos; off < pos + len; off += packedSize(view.getUint32(off, true))) {
          countRecord(b[off + PACKED_HEADER_SIZE], into);
        }
      }
      pos += len;
    }
  }
  into.frames++;
  into.lastAtMs = performance.timeOrigin + performance.now();
}

/** CPU time of the calling thread, ms (process.threadCpuUsage where available). */
function threadCpuMs(): number {
  const usage = (
    process as unknown as { threadCpuUsage?: () => { user: number; system: number } }
  ).threadCpuUsage?.();
  return usage === undefined ? Number.NaN : (usage.user + usage.system) / 1000;
}

const counts: ConsumerCounts = {
  frames: 0,
  records: 0,
  other: 0,
  kernelLost: 0,
  collectorLost: 0,
  lastAtMs: 0,
  threadCpuMs: 0,
};
let stop: (() => Promise<void>) | undefined;

async function start(req: Extract<ConsumerRequest, { type: "start" }>): Promise<void> {
  const nc = await connect({ servers: req.url, name: "bench-datapath-consumer" });
  const msgs = await (await jetstream(nc).consumers.get(RAW_STREAM, req.durable)).consume({
    max_messages: 256,
  });
  const loop = (async () => {
    for await (const msg of msgs) {
      if (msg.subject.startsWith(req.subjectPrefix)) countFrame(msg.data, counts);
      msg.ack();
    }
  })();
  stop = async () => {
    await msgs.close();
    await loop;
    await nc.close();
  };
}

self.onmessage = (event: MessageEvent<ConsumerRequest>) => {
  const req = event.data;
  const reply = (r: ConsumerReply): void => postMessage(r);
  const fail = (err: unknown): void =>
    reply({ type: "error", message: err instanceof Error ? err.message : String(err) });
  if (req.type === "start") start(req).then(() => reply({ type: "ready" }), fail);
  else if (req.type === "counts")
    reply({ type: "counts", counts: { ...counts, threadCpuMs: threadCpuMs() } });
  else (stop?.() ?? Promise.resolve()).then(() => reply({ type: "stopped" }), fail);
};
