import { expect, test } from "bun:test";
import {
  forwardLines,
  MESSAGE_TYPE,
  MESSAGE_TYPE_BY_NAME,
  messageTypeByName,
  rpcCodeLabel,
  TRACE_SUBTYPE,
  TRACE_SUBTYPE_BY_NAME,
  traceSubtypeByName,
  traceSubtypeName,
} from "./index.ts";

test.each([
  [TRACE_SUBTYPE.TO_ENDPOINT, "to-endpoint"],
  [TRACE_SUBTYPE.FROM_NETWORK, "from-network"],
  [TRACE_SUBTYPE.TO_NETWORK, "to-network"],
  [TRACE_SUBTYPE.TO_CRYPTO, "to-crypto"],
  [14, "14"],
  [-1, "-1"],
])("trace - sub-type %p is named %p", (subtype, name) => {
  expect(traceSubtypeName(subtype)).toBe(name);
});

test("trace - every sub-type round-trips through its name", () => {
  const values = Object.values(TRACE_SUBTYPE);
  expect(Object.keys(TRACE_SUBTYPE_BY_NAME)).toHaveLength(values.length);
  for (const v of values) expect(TRACE_SUBTYPE_BY_NAME[traceSubtypeName(v)]).toBe(v);
});

test.each(["toString", "constructor", "__proto__", "TRACE", ""])(
  "names - %p names no message type and no trace sub-type",
  (name) => {
    expect(messageTypeByName(name)).toBeUndefined();
    expect(traceSubtypeByName(name)).toBeUndefined();
  },
);

test("message types - every type has one --type name", () => {
  expect(messageTypeByName("policy-verdict")).toBe(MESSAGE_TYPE.POLICY_VERDICT);
  expect(new Set(Object.values(MESSAGE_TYPE_BY_NAME))).toEqual(
    new Set(Object.values(MESSAGE_TYPE)),
  );
  expect(MESSAGE_TYPE_BY_NAME.trace).toBe(4);
});

test.each([
  [0, "ok"],
  [1, "canceled"],
  [3, "invalid_argument"],
  [16, "unauthenticated"],
  [17, "17"],
])("rpc - code %p is labelled %p", (code, label) => {
  expect(rpcCodeLabel(code)).toBe(label);
});

test("lines - splits chunks on newlines, keeps a last unterminated line and multi-byte text", async () => {
  const bytes = new TextEncoder().encode("one\ntwo\nthré\nlast");
  const chunks = [
    bytes.subarray(0, 2),
    bytes.subarray(2, 12),
    bytes.subarray(12, 14),
    bytes.subarray(14),
  ];
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
  const lines: string[] = [];
  await forwardLines(stream, (l) => lines.push(l));
  expect(lines).toEqual(["one", "two", "thré", "last"]);
});
