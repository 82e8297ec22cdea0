import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { compileEncoder, FlowBatchSchema, FrameSourceSchema } from "@periscope/proto";
import { encodeRawFrame } from "@periscope/wire";
import { mixRecords, registryDeps } from "../../../bench/decode.ts";
import { captureFrames, captureRecords } from "../../../bench/enricher.ts";
import { CAPTURE_ENDPOINTS, captureMix, MIX_ENDPOINTS, packetMix } from "../../../bench/mix.ts";
import { type FrameDeps, processFrame } from "./frames.ts";
import { encodeFrame } from "./frames-fast.ts";
import { L7Tracker } from "./l7/tracker.ts";
import { goldenDeps, goldenFrame } from "./testdata/golden.ts";

const encodeBatch = compileEncoder(FlowBatchSchema);

/** Deps with a counting uuid, fresh for each path so both see the same sequence. */
function pinned(deps: FrameDeps): () => FrameDeps {
  return () => {
    let n = 0;
    return {
      ...deps,
      uuid: () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`,
    };
  };
}

function frameOf(records: Uint8Array[], seq: number): Uint8Array {
  return encodeRawFrame({
    nodeName: "bench-node",
    seq: BigInt(seq),
    bootId: "boot",
    partition: 0,
    bootToRealtimeNs: 1_700_000_000_000_000_000n,
    sealedUnixNs: 1_700_000_000_000_000_000n,
    records,
  });
}

/** Reference bytes and fast bytes of one frame, each path with its own pinned uuids. */
function both(data: Uint8Array, deps: () => FrameDeps) {
  const source = create(FrameSourceSchema, { bootId: "b", seq: 3n, records: 7n });
  const ref = processFrame(data, deps());
  ref.batch.source = source;
  const fast = encodeFrame(data, deps(), () => source);
  return { ref, want: encodeBatch(ref.batch), fast, got: fast.bytes };
}

describe("frames fast path", () => {
  test("frames fast - golden frame gives the reference bytes and counts", () => {
    const { ref, want, fast, got } = both(goldenFrame(), () => goldenDeps());
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
    expect(fast.flows).toBe(ref.flows);
    expect([...fast.failures]).toEqual([...ref.failures]);
  });

  test("frames fast - the whole bench mix gives the reference bytes", () => {
    const mix = packetMix();
    const records = mixRecords(mix, mix.reduce((n, e) => n + e.burst, 0) * 2);
    const deps = pinned(registryDeps(MIX_ENDPOINTS));
    for (let at = 0; at < records.length; at += 64) {
      const { want, got, fast } = both(frameOf(records.slice(at, at + 64), at + 1), deps);
      expect(fast.flows).toBeGreaterThan(0);
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
    }
  });

  test("frames fast - the real-traffic capture with L7 parsing gives the reference bytes", async () => {
    const frames = captureFrames(captureRecords(await captureMix(), 3), 4);
    /** One tracker per path, fed every frame in order, with uuids pinned like the flows'. */
    const path = (): (() => FrameDeps) => {
      let n = 0;
      const uuid = (): string => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`;
      const deps: FrameDeps = {
        ...registryDeps(CAPTURE_ENDPOINTS),
        uuid,
        l7: new L7Tracker({
          dnsPorts: new Set([53]),
          httpPorts: new Set([80, 8080]),
          httpHeaders: new Set(["content-type", "x-request-id"]),
          uuid,
        }),
      };
      return () => deps;
    };
    const refDeps = path();
    const fastDeps = path();
    let l7Flows = 0;
    for (const data of frames) {
      const ref = processFrame(data, refDeps());
      const fast = encodeFrame(data, fastDeps());
      expect(fast.flows).toBe(ref.flows);
      expect(fast.l7Flows).toBe(ref.l7Flows);
      expect(Buffer.from(fast.bytes).equals(Buffer.from(encodeBatch(ref.batch)))).toBe(true);
      l7Flows += fast.l7Flows;
    }
    // DNS and HTTP requests and responses of three turns of the capture
    expect(l7Flows).toBeGreaterThan(100);
    expect(fastDeps().l7?.names.size).toBeGreaterThan(0);
  });

  test("frames fast - records out of time order are sorted like the reference", () => {
    const mix = packetMix();
    const records = mixRecords(mix, 40).reverse();
    const { want, got } = both(frameOf(records, 1), pinned(registryDeps(MIX_ENDPOINTS)));
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
  });

  test("frames fast - without a source the batch has none", () => {
    const ref = processFrame(goldenFrame(), goldenDeps());
    const fast = encodeFrame(goldenFrame(), goldenDeps());
    expect(Buffer.from(fast.bytes).equals(Buffer.from(encodeBatch(ref.batch)))).toBe(true);
  });
});
