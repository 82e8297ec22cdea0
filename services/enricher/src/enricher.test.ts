import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import {
  type Bus,
  BusStreamError,
  connectBus,
  FLOWS_STREAM,
  RAW_STREAM,
  subjects,
} from "@periscope/bus";
import { FlowBatchSchema } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  canConnect,
  ethernet,
  freePort,
  ipv4,
  type LocalNats,
  startLocalNats,
  tcp,
  waitFor,
} from "@periscope/testing";
import {
  encodeRawFrame,
  encodeTraceRecord,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import type { EnricherConfig } from "./config.ts";
import { startEnricher } from "./enricher.ts";

const log = createLogger("enricher", "silent");

function config(natsUrl: string, opsPort: number): EnricherConfig {
  return {
    natsUrl,
    nodeName: "test",
    opsAddr: `127.0.0.1:${opsPort}`,
    logLevel: "silent",
    queueGroup: "enrichers",
  };
}

/** A trace record of a TCP SYN 10.200.0.10:40000 → 10.200.0.11:8080. */
function synRecord(): Uint8Array {
  const data = ethernet(
    { etherType: 0x0800 },
    ipv4({ src: "10.200.0.10", dst: "10.200.0.11", protocol: 6 }, tcp(40000, 8080, ["SYN"])),
  );
  return encodeTraceRecord({
    type: RECORD_TYPE_TRACE,
    obsPoint: OBS_TO_NETWORK,
    version: TRACE_VERSION,
    flags: 0,
    cpu: 0,
    origLen: data.length,
    tsBootNs: 1_000_000n,
    ifindex: 2,
    mark: 0,
    flowHash: 7,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 0n,
    data,
  });
}

function rawFrame(seq: bigint, records: number, recordsBefore: bigint): Uint8Array {
  return encodeRawFrame({
    nodeName: "node-x",
    bootId: "boot-x",
    seq,
    partition: 0,
    recordsBefore,
    records: Array.from({ length: records }, synRecord),
  });
}

const status = async (port: number): Promise<number> =>
  (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status ?? 0;

describe("startEnricher", () => {
  let nats: LocalNats;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startLocalNats({});
    bus = await connectBus({ url: nats.url, name: "enricher-test", log });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  test("enricher - frames from the raw stream become one FlowBatch per frame with its source, then are acked", async () => {
    const opsPort = await freePort();
    const enricher = await startEnricher(config(nats.url, opsPort), log);
    try {
      expect(await status(opsPort)).toBe(200);
      const js = bus.js();
      await js.publish(subjects.raw("node-x", 0), rawFrame(1n, 2, 0n), { msgID: "f1" });
      await js.publish(subjects.raw("node-x", 0), rawFrame(2n, 0, 2n), { msgID: "f2" });
      const jsm = await bus.jsm();
      await waitFor(async () => (await jsm.streams.info(FLOWS_STREAM)).state.messages === 2, {
        what: "two flow batches stored",
      });
      const batches = await Promise.all(
        [1, 2].map(async (seq) =>
          fromBinary(
            FlowBatchSchema,
            (await jsm.streams.getMessage(FLOWS_STREAM, { seq }))?.data ?? new Uint8Array(),
          ),
        ),
      );
      const bySeq = batches.sort((a, b) => Number((a.source?.seq ?? 0n) - (b.source?.seq ?? 0n)));
      expect(bySeq.map((b) => [b.source?.seq, b.source?.recordsBefore, b.source?.records])).toEqual(
        [
          [1n, 0n, 2n],
          [2n, 2n, 0n],
        ],
      );
      expect(bySeq[0]?.responses.filter((r) => r.responseTypes.case === "flow")).toHaveLength(2);
      expect(bySeq[1]?.responses).toHaveLength(0);
      // Acked: the work queue is empty.
      await waitFor(async () => (await jsm.streams.info(RAW_STREAM)).state.messages === 0, {
        what: "raw frames acknowledged",
      });
    } finally {
      await enricher.stop();
    }
    expect(await canConnect("127.0.0.1", opsPort)).toBe(false);
  });

  test("enricher - /readyz follows the NATS connection", async () => {
    const own = await startLocalNats({});
    const opsPort = await freePort();
    const enricher = await startEnricher(config(own.url, opsPort), log);
    let again: LocalNats | undefined;
    try {
      expect(await status(opsPort)).toBe(200);
      await own.stop();
      await waitFor(async () => (await status(opsPort)) === 503, {
        what: "not ready without NATS",
      });
      again = await startLocalNats({ port: own.port });
      await waitFor(async () => (await status(opsPort)) === 200, {
        timeoutMs: 15_000,
        what: "ready again after the broker is back",
      });
      // A fresh broker (new store): streams, durables and leases are made again, frames flow.
      const fresh = await connectBus({ url: again.url, name: "enricher-test-2", log });
      try {
        const js = fresh.js();
        await waitFor(
          async () => {
            await js
              .publish(subjects.raw("node-x", 5), rawFrame(1n, 1, 0n), { msgID: "after" })
              .catch(() => undefined);
            const jsm = await fresh.jsm();
            return (
              (await jsm.streams.info(FLOWS_STREAM).catch(() => undefined))?.state.messages === 1
            );
          },
          { timeoutMs: 20_000, intervalMs: 250, what: "frames decoded on the fresh broker" },
        );
      } finally {
        await fresh.close();
      }
    } finally {
      try {
        await enricher.stop();
      } finally {
        await again?.stop();
      }
    }
  }, 45_000);

  test("enricher - a failure after connecting releases the ops port and the NATS connection", async () => {
    // A broker without JetStream: the streams cannot be created.
    const port = await freePort();
    const monitor = await freePort();
    const plain = Bun.spawn(
      ["nats-server", "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)],
      { stdout: "ignore", stderr: "ignore" },
    );
    try {
      await waitFor(async () => canConnect("127.0.0.1", port), { what: "plain nats-server" });
      const opsPort = await freePort();
      await expect(startEnricher(config(`nats://127.0.0.1:${port}`, opsPort), log)).rejects.toThrow(
        BusStreamError,
      );
      expect(await canConnect("127.0.0.1", opsPort)).toBe(false);
      await waitFor(
        async () => {
          const connz = (await (await fetch(`http://127.0.0.1:${monitor}/connz`)).json()) as {
            num_connections: number;
          };
          return connz.num_connections === 0;
        },
        { what: "no NATS connection left" },
      );
    } finally {
      plain.kill("SIGKILL");
      await plain.exited;
    }
  });
});
