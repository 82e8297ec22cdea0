import { describe, expect, test } from "bun:test";
import { compileGlob, compilePattern, GlobError, isGlob } from "./patterns.ts";

describe("patterns", () => {
  test.each([
    { glob: "veth*", name: "veth0", want: true },
    { glob: "veth*", name: "veth", want: true },
    { glob: "veth*", name: "eth0", want: false },
    { glob: "*", name: "anything-at.all", want: true },
    { glob: "eth?", name: "eth1", want: true },
    { glob: "eth?", name: "eth10", want: false },
    { glob: "eth[0-3]", name: "eth2", want: true },
    { glob: "eth[0-3]", name: "eth7", want: false },
    { glob: "eth[!0-3]", name: "eth7", want: true },
    { glob: "eth[^0-3]", name: "eth2", want: false },
    { glob: "a.b", name: "a.b", want: true },
    { glob: "a.b", name: "axb", want: false },
    { glob: "br-+(x)", name: "br-+(x)", want: true },
    { glob: "lxc*_x", name: "lxc12_x", want: true },
  ])("patterns - glob $glob matches $name: $want", ({ glob, name, want }) => {
    expect(compileGlob(glob).test(name)).toBe(want);
  });

  test.each(["eth[0", "eth[]", "[!]"])("patterns - malformed glob %p throws GlobError", (glob) => {
    expect(() => compileGlob(glob)).toThrow(GlobError);
  });

  test.each([
    ["veth0", false],
    ["veth*", true],
    ["eth?", true],
    ["eth[01]", true],
  ])("patterns - isGlob(%p) = %p", (s, want) => {
    expect(isGlob(s)).toBe(want);
  });

  test.each([
    { p: { ifname: "*" }, name: "lo", loopback: true, want: false },
    { p: { ifname: "l?" }, name: "lo", loopback: true, want: false },
    { p: { ifname: "lo" }, name: "lo", loopback: true, want: true },
    { p: { ifname: "*" }, name: "eth0", loopback: false, want: true },
    { p: { ifname: "eth0" }, name: "eth00", loopback: false, want: false },
  ])("patterns - $p.ifname on $name (loopback $loopback): $want", ({ p, name, loopback, want }) => {
    expect(compilePattern(p).matchIfname(name, loopback)).toBe(want);
  });

  test.each([
    { netns: "ns1", name: "ns1", want: true },
    { netns: "ns1", name: "ns10", want: false },
    { netns: "pod-*", name: "pod-a", want: true },
    { netns: "pod-*", name: "node", want: false },
  ])("patterns - netns $netns on $name: $want", ({ netns, name, want }) => {
    const c = compilePattern({ ifname: "eth0", netns });
    expect(c.matchNetns(name)).toBe(want);
    expect(c.netnsGlob).toBe(isGlob(netns));
    expect(c.text).toBe(`${netns}/eth0`);
  });
});
