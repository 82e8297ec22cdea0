import { expect, test } from "bun:test";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type CompactOptions, formatCompact } from "@periscope/flow";
import { GetFlowsResponseSchema } from "@periscope/proto";
import { decodeCompactResponse } from "./compact-decoder.ts";
import { varied } from "./varied-flows.ts";

const OPTIONS: CompactOptions[] = [
  {},
  { color: true, nodeName: true, policyNames: true },
  { ipTranslation: false, timestamps: "RFC3339Nano" },
];

test("compact output of the lazy decoder is byte-identical to the full decoder's on varied responses", () => {
  let flows = 0;
  for (let i = 0; i < 1500; i++) {
    const bytes = toBinary(GetFlowsResponseSchema, varied(i));
    const full = fromBinary(GetFlowsResponseSchema, bytes, { readUnknownFields: false });
    const lazy = decodeCompactResponse(bytes);
    if (full.responseTypes.case === "flow") flows++;
    for (const o of OPTIONS) {
      const want = formatCompact(full, o);
      expect(want).not.toBe("");
      if (formatCompact(lazy, o) !== want)
        expect({ i, line: formatCompact(lazy, o) }).toEqual({ i, line: want });
    }
  }
  expect(flows).toBeGreaterThan(1300);
}, 60_000);

test("the lazy decoder keeps what a resumed stream identifies responses by", () => {
  const bytes = toBinary(GetFlowsResponseSchema, varied(1));
  const lazy = decodeCompactResponse(bytes);
  const full = fromBinary(GetFlowsResponseSchema, bytes);
  expect(lazy.time).toEqual(full.time);
  expect(lazy.nodeName).toBe(full.nodeName);
  expect(lazy.responseTypes.case === "flow" && lazy.responseTypes.value.uuid).toBe("uuid-1");
});

test("a truncated message is an error naming what was wrong", () => {
  const bytes = toBinary(GetFlowsResponseSchema, varied(2));
  expect(() => decodeCompactResponse(bytes.subarray(0, bytes.length - 3))).toThrow(
    /past the end|truncated/,
  );
});
