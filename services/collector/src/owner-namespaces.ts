/**
 * Attached devices as the socket-owner namespace filter sees them: a device in the
 * collector's own namespace that carries other namespaces' traffic (a bridge, or a veth or
 * other stacked device linked to another device, such as Docker's host-side veths) is
 * marked, as the sockets behind it live in namespaces no attached device is in; the filter
 * then reports every namespace (proc.ts `netnsOfDevices`).
 */
import { existsSync, readFileSync } from "node:fs";
import type { AttachedDevice } from "./attacher.ts";

const SYS_CLASS_NET = "/sys/class/net";

/** True when the own-namespace device `ifname` is a bridge or links to another device. */
export function carriesOtherNamespaces(ifname: string, root = SYS_CLASS_NET): boolean {
  if (existsSync(`${root}/${ifname}/bridge`)) return true;
  try {
    const ifindex = readFileSync(`${root}/${ifname}/ifindex`, "utf8").trim();
    const iflink = readFileSync(`${root}/${ifname}/iflink`, "utf8").trim();
    return iflink !== ifindex;
  } catch {
    return false;
  }
}

/** An attached device, marked when it carries other namespaces' sockets' traffic. */
export interface OwnerScopeDevice {
  readonly netnsCookie: bigint;
  readonly carriesOthers: boolean;
}

/** `devices` with {@link OwnerScopeDevice.carriesOthers} set for own-namespace bridges and linked devices. */
export function ownerScopeDevices(
  devices: readonly AttachedDevice[],
  carries: (ifname: string) => boolean = carriesOtherNamespaces,
): OwnerScopeDevice[] {
  return devices.map((d) => ({
    netnsCookie: d.netnsCookie,
    carriesOthers: d.target.netns === undefined && carries(d.target.ifname),
  }));
}
