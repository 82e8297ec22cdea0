/**
 * Lists network devices: the collector's own namespace through /sys/class/net, a named
 * namespace through `ip -n <netns> -j link show`, and the named namespaces in /run/netns.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { NETNS_RUN_DIR } from "@periscope/bpf";

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

/** Parses `ip -j link show` output. */
export function parseIpLinkJson(text: string): NetDevice[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new DiscoveryError("ip -j link show printed no JSON", { cause });
  }
  if (!Array.isArray(parsed)) throw new DiscoveryError("ip -j link show printed no list");
  const out: NetDevice[] = [];
  for (const item of parsed as unknown[]) {
    const l = item as { ifindex?: unknown; ifname?: unknown; link_type?: unknown } | null;
    if (typeof l?.ifindex === "number" && typeof l.ifname === "string") {
      out.push({ ifname: l.ifname, ifindex: l.ifindex, loopback: l.link_type === "loopback" });
    }
  }
  return out;
}

async function ipLinkDevices(netns: string): Promise<NetDevice[] | undefined> {
  const nsPath = join(NETNS_RUN_DIR, netns);
  if (!existsSync(nsPath)) return undefined;
  const proc = Bun.spawn(["ip", "-n", netns, "-j", "link", "show"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) {
    // Deleted between the check and the listing: gone, not an error.
    if (!existsSync(nsPath)) return undefined;
    throw new DiscoveryError(`ip -n ${netns} -j link show exited ${code}: ${err.trim()}`);
  }
  return parseIpLinkJson(out);
}

/** The lister of the running system. */
export const systemLister: DeviceLister = {
  devices: async (netns) => (netns === undefined ? sysfsDevices() : ipLinkDevices(netns)),
  namedNetns: () => {
    try {
      return readdirSync(NETNS_RUN_DIR);
    } catch (err) {
      if (isMissing(err)) return [];
      throw new DiscoveryError(`reading ${NETNS_RUN_DIR}`, { cause: err });
    }
  },
};
