/**
 * Lists network devices: the collector's own namespace through /sys/class/net, a named
 * namespace with an rtnetlink dump from inside it, and the named namespaces in /run/netns.
 * Used at start, for namespaces that appear, and by the periodic safety-net rescan;
 * changes in between arrive as notifications (see watch.ts).
 */
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { BpfError, listLinks, NETNS_RUN_DIR } from "@periscope/bpf";

/** ARPHRD_LOOPBACK from <linux/if_arp.h>: /sys/class/net/<dev>/type of a loopback device. */
const ARPHRD_LOOPBACK = 772;
const SYS_CLASS_NET = "/sys/class/net";

/** One device as listed. */
export interface NetDevice {
  readonly ifname: string;
  readonly ifindex: number;
  readonly loopback: boolean;
}

/** Listing a namespace's devices failed for a reason other than the namespace being gone. */
export class DiscoveryError extends Error {
  override name = "DiscoveryError";
}

/** Lists devices of the own netns (`netns` undefined) or of a named one. */
export interface DeviceLister {
  /** Devices, or undefined when the named netns does not exist. Throws DiscoveryError. */
  devices(netns: string | undefined): Promise<NetDevice[] | undefined>;
  /** Names of the namespaces in /run/netns. */
  namedNetns(): string[];
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOENT" || code === "ENODEV" || code === "ENXIO";
}

/** Devices of the namespace /sys is mounted for; devices vanishing mid-scan are skipped. */
export function sysfsDevices(root = SYS_CLASS_NET): NetDevice[] {
  const out: NetDevice[] = [];
  for (const ifname of readdirSync(root)) {
    try {
      const ifindex = Number(readFileSync(join(root, ifname, "ifindex"), "utf8").trim());
      const type = Number(readFileSync(join(root, ifname, "type"), "utf8").trim());
      if (Number.isInteger(ifindex) && ifindex > 0) {
        out.push({ ifname, ifindex, loopback: type === ARPHRD_LOOPBACK });
      }
    } catch (err) {
      if (!isMissing(err)) throw new DiscoveryError(`reading ${root}/${ifname}`, { cause: err });
    }
  }
  return out;
}

/** Devices of a named namespace by RTM_GETLINK; undefined when the namespace is gone. */
export function netlinkDevices(netns: string): NetDevice[] | undefined {
  try {
    return listLinks(netns);
  } catch (err) {
    // ENOENT: no such file; EINVAL: a file that is not (or no longer) a namespace mount.
    if (
      err instanceof BpfError &&
      (err.errno === constants.errno.ENOENT || err.errno === constants.errno.EINVAL)
    )
      return undefined;
    throw new DiscoveryError(`listing the devices of netns ${netns}`, { cause: err });
  }
}

/** The lister of the running system. */
export const systemLister: DeviceLister = {
  devices: async (netns) => (netns === undefined ? sysfsDevices() : netlinkDevices(netns)),
  namedNetns: () => {
    try {
      return readdirSync(NETNS_RUN_DIR);
    } catch (err) {
      if (isMissing(err)) return [];
      throw new DiscoveryError(`reading ${NETNS_RUN_DIR}`, { cause: err });
    }
  },
};
