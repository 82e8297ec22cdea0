import { describe, expect, test } from "bun:test";
import { encodeGrpcMessage, reencodeGrpcMessage } from "./grpc-message.ts";

describe("grpc-message encoding", () => {
  const cases: [string, string, string][] = [
    [
      "printable ASCII stays",
      'invalid source_ip filter: "10.0.0.0/33"',
      'invalid source_ip filter: "10.0.0.0/33"',
    ],
    ["percent is encoded", "100% busy", "100%25 busy"],
    ["control bytes are encoded", "a\nb\tc", "a%0Ab%09c"],
    ["non-ASCII as UTF-8 bytes", "café ✓", "caf%C3%A9 %E2%9C%93"],
    ["DEL is encoded", "x\x7f", "x%7F"],
    ["empty", "", ""],
  ];
  test.each(cases)("grpc-message - encodes: %s", (_name, raw, want) => {
    expect(encodeGrpcMessage(raw)).toBe(want);
    expect(decodeURIComponent(encodeGrpcMessage(raw))).toBe(raw);
  });

  const reencoded: [string, string][] = [
    ["invalid%20source_ip%20filter%3A%20a%2Fb", "invalid source_ip filter: a/b"],
    ["caf%C3%A9%0A", "caf%C3%A9%0A"],
    ["50%25", "50%25"],
    ["not %zz decodable", "not %zz decodable"],
  ];
  test.each(reencoded)("grpc-message - re-encodes %p", (value, want) => {
    expect(reencodeGrpcMessage(value)).toBe(want);
  });
});
