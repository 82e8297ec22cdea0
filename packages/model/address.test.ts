import { expect, test } from "bun:test";
import { canonicalIp, formatIPv6, formatMac, parseIp } from "./address.ts";

test.each([
  ["fd00:200::2", "fd00:200::2"],
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
  ["fe80:0:0:0:abcd:ef01:2345:6789", "fe80::abcd:ef01:2345:6789"],
  ["0:0:0:0:0:ffff:a00:1", "10.0.0.1"],
])("address - formats IPv6 %s as %s", (input, text) => {
  const bytes = parseIp(input);
  if (bytes === undefined) throw new Error(`${input} did not parse`);
  expect(formatIPv6(bytes, 0)).toBe(text);
});

test("address - formats MAC addresses lower-case with colons", () => {
  expect(formatMac(new Uint8Array([0, 0xab, 0xcd, 0x0e, 0xff, 0x10]), 0)).toBe("00:ab:cd:0e:ff:10");
});

test.each([
  ["10.1.2.3", [10, 1, 2, 3]],
  ["255.255.255.255", [255, 255, 255, 255]],
  ["::1", [...new Array(15).fill(0), 1]],
  ["fd00:200::a", [0xfd, 0, 2, 0, ...new Array(11).fill(0), 0x0a]],
  ["::ffff:10.0.0.1", [...new Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1]],
  ["1:2:3:4:5:6:7.8.9.10", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 7, 8, 9, 10]],
])("address - parses %s", (text, bytes) => {
  expect([...(parseIp(text) ?? [])]).toEqual(bytes);
});

test.each([
  "",
  "pod",
  "1.2.3",
  "300.1.1.1",
  "01.2.3.4",
  "::g",
  "1::2::3",
  "fe80::1%eth0",
  " 1.2.3.4",
])("address - %p is not an IP", (text) => {
  expect(parseIp(text)).toBeUndefined();
  expect(canonicalIp(text)).toBeUndefined();
});

test.each([
  ["10.0.0.1", "10.0.0.1"],
  ["FD00:200:0:0::A", "fd00:200::a"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["::ffff:10.0.0.1", "10.0.0.1"],
])("address - canonical text of %s is %s", (text, want) => {
  expect(canonicalIp(text)).toBe(want);
});
