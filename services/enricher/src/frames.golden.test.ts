import { describe, expect, test } from "bun:test";
import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { compileEncoder, FlowBatchSchema } from "@periscope/proto";
import { processFrame } from "./frames.ts";
import { GOLDEN_PATH, goldenDeps, goldenFrame, goldenJson, PACKETS } from "./testdata/golden.ts";

describe("frames golden", () => {
  test("frames golden - flows for a fixed frame match testdata/frames.golden.json", async () => {
    const want: unknown = JSON.parse(await Bun.file(GOLDEN_PATH).text());
    // On failure the diff names the flow and field that changed; if the change is
    // intended, rewrite the fixture (see testdata/golden.ts) and review its diff.
    expect(JSON.parse(goldenJson())).toEqual(want);
  });

  test("frames golden - every record gives a flow or a counted loss", () => {
    const { flows, batch } = processFrame(goldenFrame(), goldenDeps());
    expect(flows).toBe(PACKETS.length - 1);
    expect(batch.responses.length).toBe(PACKETS.length + 1);
  });

  test("frames golden - compiled encoder bytes decode back to the same batch", () => {
    const { batch } = processFrame(goldenFrame(), goldenDeps());
    const bytes = toBinary(FlowBatchSchema, batch);
    // The enricher publishes with the compiled encoder; it must produce the same bytes.
    expect(compileEncoder(FlowBatchSchema)(batch)).toEqual(bytes);
    expect(toJson(FlowBatchSchema, fromBinary(FlowBatchSchema, bytes))).toEqual(
      toJson(FlowBatchSchema, batch),
    );
  });
});
