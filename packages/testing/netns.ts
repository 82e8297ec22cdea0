import { randomBytes } from "node:crypto";
import { addNetnsForTest, deleteNetns, runOk } from "@periscope/devstack/testing.ts";

/**
 * Prefix of every network namespace tests create; scripts/check-leftovers.ts
 * reports (and removes) any left behind.
 */
export const TEST_NETNS_PREFIX = "psct-";

/** Two empty network namespaces `psct-<id>-a/-b` (loopback up). */
export interface NetnsPair {
  /** Random hex id, unique per pair: use it in device names too. */
  readonly id: string;
  readonly nsA: string;
  readonly nsB: string;
  /** Deletes both namespaces (and every device in them); safe to call twice. */
  destroy(): Promise<void>;
}

/** Creates two empty namespaces; devices are added with {@link addVeth}. */
export async function createNetnsPair(): Promise<NetnsPair> {
  const id = randomBytes(4).toString("hex");
  const nsA = `${TEST_NETNS_PREFIX}${id}-a`;
  const nsB = `${TEST_NETNS_PREFIX}${id}-b`;
  const destroy = async (): Promise<void> => {
    for (const ns of [nsA, nsB]) await deleteNetns(ns);
  };
  try {
    for (const ns of [nsA, nsB]) await addNetnsForTest(ns);
    return { id, nsA, nsB, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/**
 * Adds veth `ifA` (in nsA, `ipA`/24) ↔ `ifB` (in nsB, `ipB`/24), both up; returns the
 * ifindex of ifA.
 */
export async function addVeth(
  ns: NetnsPair,
  ifA: string,
  ifB: string,
  ipA: string,
  ipB: string,
): Promise<number> {
  await runOk([
    ...["ip", "-n", ns.nsA, "link", "add", ifA, "type", "veth"],
    ...["peer", "name", ifB, "netns", ns.nsB],
  ]);
  await runOk(["ip", "-n", ns.nsA, "addr", "add", `${ipA}/24`, "dev", ifA]);
  await runOk(["ip", "-n", ns.nsB, "addr", "add", `${ipB}/24`, "dev", ifB]);
  await runOk(["ip", "-n", ns.nsA, "link", "set", ifA, "up"]);
  await runOk(["ip", "-n", ns.nsB, "link", "set", ifB, "up"]);
  return ifindexOf(ns.nsA, ifA);
}

/**
 * Adds veth `ifA` (in nsA) ↔ `ifB` (in nsB), both left down. With `ipv4` (`[a, b]`),
 * each end gets its address (/24), IPv6 off and a permanent neighbour entry for the
 * other end, so no ARP or IPv6 frame ever crosses: every frame on the link is a test
 * packet, and device counters can be compared with what a test sent.
 */
export async function addQuietVeth(
  ns: NetnsPair,
  ifA: string,
  ifB: string,
  ipv4?: readonly [string, string],
): Promise<void> {
  await runOk([
    ...["ip", "-n", ns.nsA, "link", "add", ifA, "type", "veth"],
    ...["peer", "name", ifB, "netns", ns.nsB],
  ]);
  if (ipv4 === undefined) return;
  const ends = [
    { netns: ns.nsA, dev: ifA, ip: ipv4[0] },
    { netns: ns.nsB, dev: ifB, ip: ipv4[1] },
  ] as const;
  for (const e of ends) {
    await runOk([
      ...["ip", "netns", "exec", e.netns],
      ...["sysctl", "-qw", `net.ipv6.conf.${e.dev}.disable_ipv6=1`],
    ]);
    await runOk(["ip", "-n", e.netns, "addr", "add", `${e.ip}/24`, "dev", e.dev]);
  }
  const macOf = async (netns: string, dev: string): Promise<string> => {
    const links = JSON.parse(await runOk(["ip", "-n", netns, "-j", "link", "show", dev])) as {
      address: string;
    }[];
    return links[0]?.address ?? "";
  };
  for (const [self, peer] of [
    [ends[0], ends[1]],
    [ends[1], ends[0]],
  ] as const) {
    await runOk([
      ...["ip", "-n", self.netns, "neigh", "replace", peer.ip],
      ...["lladdr", await macOf(peer.netns, peer.dev), "dev", self.dev, "nud", "permanent"],
    ]);
  }
}

/** Packets and bytes a device counted, each way (`ip -s link`'s stats64). */
export interface LinkStats {
  rx: { packets: number; bytes: number };
  tx: { packets: number; bytes: number };
}

/** The counters of device `dev` in namespace `netns`. */
export async function linkStats(netns: string, dev: string): Promise<LinkStats> {
  const [l] = JSON.parse(
    await runOk(["ip", "-n", netns, "-s", "-s", "-j", "link", "show", dev]),
  ) as {
    stats64: LinkStats;
  }[];
  if (!l) throw new Error(`no counters for ${netns}/${dev}`);
  return l.stats64;
}

/** Two namespaces joined by a veth pair with IPv4 addresses .1 (a) and .2 (b). */
export interface VethPair {
  readonly nsA: string;
  readonly nsB: string;
  readonly ifA: string;
  readonly ifB: string;
  readonly ipA: string;
  readonly ipB: string;
  /** ifindex of ifA inside nsA. */
  readonly ifindexA: number;
  destroy(): Promise<void>;
}

/** Creates a {@link NetnsPair} joined by veth `pa<id>`/`pb<id>` on 10.231.0.0/24. */
export async function createVethPair(): Promise<VethPair> {
  const ns = await createNetnsPair();
  const ifA = `pa${ns.id}`;
  const ifB = `pb${ns.id}`;
  const ipA = "10.231.0.1";
  const ipB = "10.231.0.2";
  try {
    const ifindexA = await addVeth(ns, ifA, ifB, ipA, ipB);
    return { nsA: ns.nsA, nsB: ns.nsB, ifA, ifB, ipA, ipB, ifindexA, destroy: ns.destroy };
  } catch (err) {
    await ns.destroy();
    throw err;
  }
}

/** ifindex of a device inside a named netns. */
export async function ifindexOf(netns: string, ifname: string): Promise<number> {
  const links = JSON.parse(await runOk(["ip", "-n", netns, "-j", "link", "show", ifname])) as {
    ifindex: number;
  }[];
  const ifindex = links[0]?.ifindex;
  if (ifindex === undefined) throw new Error(`no ifindex for ${netns}/${ifname}`);
  return ifindex;
}

/** A veth with one end (`hostIf`) in the host's namespace and the other (`eth0`) in `peerNs`. */
export interface HostVeth {
  readonly hostIf: string;
  readonly peerNs: string;
  /** Deletes `peerNs`, which removes both ends; safe to call twice. */
  destroy(): Promise<void>;
}

/**
 * Creates namespace `peerNs` and a veth `hostIf` ↔ `peerNs`/eth0. With `addrs`, both ends get
 * their address (`/prefixLen`) and come up (loopback in `peerNs` always does); without, the device
 * is left down and unaddressed for the test to configure.
 */
export async function createHostVeth(
  hostIf: string,
  peerNs: string,
  addrs?: { host: string; peer: string; prefixLen: number },
): Promise<HostVeth> {
  const destroy = (): Promise<void> => deleteNetns(peerNs);
  try {
    await addNetnsForTest(peerNs);
    await runOk([
      "ip",
      "link",
      "add",
      hostIf,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      peerNs,
    ]);
    if (addrs) {
      await runOk(["ip", "addr", "add", `${addrs.host}/${addrs.prefixLen}`, "dev", hostIf]);
      await runOk([
        "ip",
        "-n",
        peerNs,
        "addr",
        "add",
        `${addrs.peer}/${addrs.prefixLen}`,
        "dev",
        "eth0",
      ]);
      await runOk(["ip", "link", "set", hostIf, "up"]);
      await runOk(["ip", "-n", peerNs, "link", "set", "eth0", "up"]);
    }
    return { hostIf, peerNs, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
