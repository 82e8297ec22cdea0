/**
 * Transport comparison: the two hops of the pipeline (collector → enricher → observer)
 * carried by core NATS (publish, queue subscription, subscription) and by JetStream
 * (acknowledged publish with a msgId, durable pull consumer, ack after the next hop's
 * publish is acknowledged), with file and with memory storage. The relay does only what
 * the enricher's transport does (no decoding), so the figures are the transport's cost.
 *
 * Per mode: flat-out throughput of N frames of FRAME_BYTES, and end-to-end latency
 * (producer publish → consumer receipt) at a paced rate. Frames the consumer did not get
 * are reported as `lost` (core NATS drops them at a slow consumer; JetStream must not).
 */

import type { JsMsg } from "@nats-io/jetstream";
import {
  type Bus,
  connectBus,
  DEFAULT_STREAM_LIMITS,
  ensureDurable,
  ensureStream,
  FLOWS_STREAM,
  RAW_STREAM,
} from "@periscope/bus";
import type { LocalNats } from "@periscope/devstack";
import pino from "pino";
import { emit, LatencySamples, until } from "./report.ts";

/** A frame of ~50 trace records with 128-byte captures. */
const FRAME_BYTES = 8 * 1024;
const FLAT_OUT_FRAMES = 20_000;
/** Paced rates for the latency figures, frames/s (a frame holds up to 256 records). */
const PACED_RATES = [100, 400] as const;
const PACED_MS = 3_000;
const MAX_IN_FLIGHT = 256;
const RAW = "periscope.raw.bench.0";
const FLOWS = "periscope.flows.bench";

type Mode = "core" | "jetstream-file" | "jetstream-memory";
const MODES: readonly Mode[] = ["core", "jetstream-file", "jetstream-memory"];

/** One mode's three connections and how frames move through them. */
interface Path {
  /** Sends one frame; resolves when the transport took it (JetStream: acknowledged). */
  send(frame: Uint8Array, id: string): Promise<void>;
  /** Frames the consumer received so far. */
  received(): number;
  close(): Promise<void>;
}

/** Calls `onFrame` for every frame reaching the consumer (the timestamp is its first 8 bytes). */
async function openPath(
  nats: LocalNats,
  mode: Mode,
  onFrame: (f: Uint8Array) => void,
): Promise<Path> {
  const log = pino({ level: "silent" });
  const buses: Bus[] = [];
  for (const name of ["producer", "relay", "consumer"]) {
    buses.push(await connectBus({ url: nats.url, name: `bench-${name}`, log }));
  }
  const [producer, relay, consumer] = buses as [Bus, Bus, Bus];
  let got = 0;
  const closeAll = async (): Promise<void> => {
    for (const b of buses) await b.close();
  };
  if (mode === "core") {
    relay.nc.subscribe(RAW, {
      queue: "enrichers",
      callback: (_err, msg) => relay.nc.publish(FLOWS, msg.data),
    });
    consumer.nc.subscribe(FLOWS, {
      callback: (_err, msg) => {
        got++;
        onFrame(msg.data);
      },
    });
    await relay.nc.flush();
    await consumer.nc.flush();
    return {
      send: async (frame) => producer.nc.publish(RAW, frame),
      received: () => got,
      close: closeAll,
    };
  }
  const limits = {
    ...DEFAULT_STREAM_LIMITS,
    storage: mode === "jetstream-file" ? "file" : "memory",
  } as const;
  const jsm = await producer.jsm();
  for (const s of [RAW_STREAM, FLOWS_STREAM]) await jsm.streams.delete(s).catch(() => false);
  await ensureStream(producer, "raw", limits);
  await ensureStream(producer, "flows", limits);
  await ensureDurable(producer, RAW_STREAM, "enrichers", { ackWaitMs: 5000, maxAckPending: 4096 });
  await ensureDurable(producer, FLOWS_STREAM, "observer", {
    ackWaitMs: 30_000,
    maxAckPending: 8192,
  });
  const relayJs = relay.js();
  const relayMsgs = await (await relayJs.consumers.get(RAW_STREAM, "enrichers")).consume({
    max_messages: 512,
  });
  void (async () => {
    for await (const m of relayMsgs) {
      const msg: JsMsg = m;
      relayJs.publish(FLOWS, msg.data, { msgID: `f-${msg.seq}` }).then(
        () => msg.ack(),
        () => msg.nak(1000),
      );
    }
  })();
  const consumerMsgs = await (await consumer.js().consumers.get(FLOWS_STREAM, "observer")).consume({
    max_messages: 1024,
  });
  void (async () => {
    for await (const msg of consumerMsgs) {
      got++;
      onFrame(msg.data);
      msg.ack();
    }
  })();
  const producerJs = producer.js();
  return {
    send: async (frame, id) => {
      await producerJs.publish(RAW, frame, { msgID: id });
    },
    received: () => got,
    close: async () => {
      await relayMsgs.close();
      await consumerMsgs.close();
      for (const s of [RAW_STREAM, FLOWS_STREAM]) await jsm.streams.delete(s).catch(() => false);
      await closeAll();
    },
  };
}

function frame(): Uint8Array {
  const f = new Uint8Array(FRAME_BYTES);
  new DataView(f.buffer).setFloat64(0, performance.now());
  return f;
}

/** Sends `count` frames with at most MAX_IN_FLIGHT unacknowledged. */
async function sendMany(path: Path, count: number, prefix: string): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    const p = path.send(frame(), `${prefix}-${i}`).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    else if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(inFlight);
}

async function measure(nats: LocalNats, mode: Mode): Promise<void> {
  let latencies: LatencySamples | undefined;
  const path = await openPath(nats, mode, (f) => {
    latencies?.push(performance.now() - new DataView(f.buffer, f.byteOffset).getFloat64(0));
  });
  try {
    // Flat out.
    const t0 = performance.now();
    await sendMany(path, FLAT_OUT_FRAMES, "flat");
    let elapsed: number;
    try {
      elapsed = await until(
        "frames through",
        t0,
        () => path.received() >= FLAT_OUT_FRAMES,
        60_000,
        5,
      );
    } catch {
      elapsed = performance.now() - t0;
    }
    const got = path.received();
    emit(`transport-${mode}`, "throughput", (got / elapsed) * 1000, "frames/s");
    emit(`transport-${mode}`, "throughput_bytes", (got * FRAME_BYTES) / elapsed / 1000, "MB/s");
    emit(`transport-${mode}`, "lost_flat_out", FLAT_OUT_FRAMES - got, "frames");

    // Paced latency.
    for (const rate of PACED_RATES) {
      const samples = new LatencySamples();
      latencies = samples;
      const base = path.received();
      const n = Math.round((rate * PACED_MS) / 1000);
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const due = start + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        void path.send(frame(), `paced-${rate}-${i}`);
      }
      await until(
        "paced frames through",
        start,
        () => path.received() >= base + n,
        30_000,
        5,
      ).catch(() => 0);
      const s = samples.summary();
      emit(`transport-${mode}`, `latency_p50_at_${rate}`, s.p50, "ms");
      emit(`transport-${mode}`, `latency_p99_at_${rate}`, s.p99, "ms");
      emit(`transport-${mode}`, `lost_paced_at_${rate}`, base + n - path.received(), "frames");
    }
  } finally {
    await path.close();
  }
}

/** Runs every mode against `nats` (a local server with JetStream). */
export async function runTransportBench(nats: LocalNats): Promise<void> {
  for (const mode of MODES) {
    process.stderr.write(`bench: transport ${mode}\n`);
    await measure(nats, mode);
  }
}
