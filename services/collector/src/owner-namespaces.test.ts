import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AttachedDevice } from "./attacher.ts";
import { carriesOtherNamespaces, ownerScopeDevices } from "./owner-namespaces.ts";
import { netnsOfDevices } from "./proc.ts";

const root = mkdtempSync(join(tmpdir(), "psct-ownerns-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A /sys/class/net entry: ifindex, iflink, and a bridge/ directory for bridges. */
function device(name: string, ifindex: number, iflink: number, bridge = false): void {
  mkdirSync(join(root, name, bridge ? "bridge" : ""), { recursive: true });
  writeFileSync(join(root, name, "ifindex"), `${ifindex}\n`);
  writeFileSync(join(root, name, "iflink"), `${iflink}\n`);
}

const attached = (ifname: string, netns?: string, cookie = 7n): AttachedDevice => ({
  name: netns === undefined ? ifname : `${netns}/${ifname}`,
  target: netns === undefined ? { ifname } : { ifname, netns },
  ifindex: 1,
  netnsCookie: cookie,
});

describe("socket-owner namespaces of attached devices", () => {
  device("eth0", 2, 2);
  device("veth1a2b3c4", 40, 39); // Docker's host side: its peer is eth0 in a container
  device("br-1", 30, 30, true);

  test("a physical device carries only its own namespace; a veth with a peer and a bridge carry others", () => {
    const carries = (n: string) => carriesOtherNamespaces(n, root);
    expect(carries("eth0")).toBe(false);
    expect(carries("veth1a2b3c4")).toBe(true);
    expect(carries("br-1")).toBe(true);
    expect(carries("gone0")).toBe(false);
  });

  test("the filter: cookies of the devices' namespaces, every namespace with a host-side veth, none without devices", () => {
    const carries = (n: string) => carriesOtherNamespaces(n, root);
    const pods = [attached("eth0", "pod-a", 11n), attached("eth0", "pod-b", 12n)];
    expect(netnsOfDevices(ownerScopeDevices(pods, carries))).toEqual(new Set([11n, 12n]));
    // In a named namespace the name says nothing about the collector's own devices.
    expect(ownerScopeDevices([attached("veth1a2b3c4", "pod-a")], carries)[0]?.carriesOthers).toBe(
      false,
    );
    expect(netnsOfDevices(ownerScopeDevices([attached("eth0")], carries))).toEqual(new Set([7n]));
    expect(
      netnsOfDevices(ownerScopeDevices([...pods, attached("veth1a2b3c4")], carries)).size,
    ).toBe(0);
    expect(netnsOfDevices(ownerScopeDevices([attached("br-1")], carries)).size).toBe(0);
    expect(netnsOfDevices(ownerScopeDevices([], carries)).size).toBe(1); // NO_NETNS_COOKIE only
  });
});
