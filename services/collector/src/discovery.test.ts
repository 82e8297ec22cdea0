import { describe, expect, test } from "bun:test";
import { DiscoveryError, type NetDevice, parseIpLinkJson, sysfsDevices } from "./discovery.ts";

describe("discovery", () => {
  test.each<{ text: string; want: NetDevice[] }>([
    { text: "[]", want: [] },
    {
      text: '[{"ifindex":1,"ifname":"lo","link_type":"loopback"},{"ifindex":7,"ifname":"veth0","link":"peer0","link_type":"ether"}]',
      want: [
        { ifname: "lo", ifindex: 1, loopback: true },
        { ifname: "veth0", ifindex: 7, loopback: false },
      ],
    },
    { text: '[{"ifname":"noindex"},{"ifindex":3}]', want: [] },
  ])("discovery - parses ip -j link output $text", ({ text, want }) => {
    expect(parseIpLinkJson(text)).toEqual(want);
  });

  test.each(["", "not json", '{"ifindex":1}'])("discovery - rejects %p", (text) => {
    expect(() => parseIpLinkJson(text)).toThrow(DiscoveryError);
  });

  test("discovery - /sys/class/net lists lo as loopback with ifindex 1", () => {
    const lo = sysfsDevices().find((d) => d.ifname === "lo");
    expect(lo).toEqual({ ifname: "lo", ifindex: 1, loopback: true });
  });
});
