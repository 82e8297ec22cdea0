import { expect, test } from "bun:test";
import { ipv6Bytes } from "../testing/packets.ts";
import { formatIPv6, formatMac } from "./addr.ts";

test.each([
  ["fd00:200::2", "fd00:200::2"],
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
  ["fe80:0:0:0:abcd:ef01:2345:6789", "fe80::abcd:ef01:2345:6789"],
  ["0:0:0:0:0:ffff:a00:1", "10.0.0.1"],
])("addr - formats IPv6 %s as %s", (input, text) => {
  expect(formatIPv6(new Uint8Array(ipv6Bytes(input)), 0)).toBe(text);
});

test("addr - formats MAC addresses lower-case with colons", () => {
  expect(formatMac(new Uint8Array([0, 0xab, 0xcd, 0x0e, 0xff, 0x10]), 0)).toBe("00:ab:cd:0e:ff:10");
});
