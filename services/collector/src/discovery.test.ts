import { describe, expect, test } from "bun:test";
import { parseLinkMessages } from "@periscope/bpf";
import { createNetnsPair, runOk } from "@periscope/testing";
import { netlinkDevices, sysfsDevices } from "./discovery.ts";

const isRoot = process.getuid?.() === 0;

/** One rtnetlink message: nlmsghdr + ifinfomsg + IFLA_IFNAME. */
function linkMessage(type: number, ifindex: number, ifname: string, arphrd = 1): Uint8Array {
  const name = Buffer.from(`${ifname}\0`);
  const attrLen = 4 + name.length;
  const len = 16 + 16 + ((attrLen + 3) & ~3);
  const buf = new Uint8Array(len);
  const v = new DataView(buf.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, type, true);
  v.setUint16(16 + 2, arphrd, true);
  v.setInt32(16 + 4, ifindex, true);
  v.setUint16(32, attrLen, true);
  v.setUint16(34, 3, true); // IFLA_IFNAME
  buf.set(name, 36);
  return buf;
}

describe("discovery", () => {
  test("discovery - parses RTM_NEWLINK/RTM_DELLINK messages in one datagram", () => {
    const a = linkMessage(16, 7, "veth0");
    const b = linkMessage(17, 1, "lo", 772);
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(parseLinkMessages(both)).toEqual({
      changes: [
        { kind: "new", ifname: "veth0", ifindex: 7, loopback: false },
        { kind: "del", ifname: "lo", ifindex: 1, loopback: true },
      ],
      done: false,
    });
  });

  test.each([
    { what: "a length beyond the datagram", bytes: linkMessage(16, 7, "veth0").subarray(0, 30) },
    { what: "a length below the header", bytes: new Uint8Array(16) },
  ])("discovery - rejects $what", ({ bytes }) => {
    expect(() => parseLinkMessages(bytes)).toThrow(/EBADMSG/);
  });

  test("discovery - /sys/class/net lists lo as loopback with ifindex 1", () => {
    const lo = sysfsDevices().find((d) => d.ifname === "lo");
    expect(lo).toEqual({ ifname: "lo", ifindex: 1, loopback: true });
  });

  test.skipIf(!isRoot)("discovery - a netlink dump lists a namespace's devices", async () => {
    const pair = await createNetnsPair();
    const ns = pair.nsA;
    try {
      await runOk(["ip", "-n", ns, "link", "add", "dv0", "type", "veth", "peer", "name", "dv1"]);
      const devs = netlinkDevices(ns);
      expect(devs?.find((d) => d.ifname === "lo")).toEqual({
        ifname: "lo",
        ifindex: 1,
        loopback: true,
      });
      expect(devs?.map((d) => d.ifname).sort()).toEqual(["dv0", "dv1", "lo"]);
    } finally {
      await pair.destroy();
    }
    expect(netlinkDevices(ns)).toBeUndefined();
  });
});
