/**
 * A realistic packet mix for the decode and pipeline benches: pod-to-pod and
 * pod-to-world TCP connections (handshake, data, ACKs, FIN), DNS over UDP, QUIC-like
 * UDP and ICMP echo, over IPv4 and IPv6, seen at tc ingress and egress. Pods have
 * endpoint records (namespace, pod, labels); world addresses (documentation
 * ranges, never sent anywhere: packets only go through BPF_PROG_TEST_RUN) have none.
 */

import type { EndpointRecord } from "@periscope/bus";
import { DEFAULT_CAPTURE } from "@periscope/model";
import { ethernet, icmp, ipv4, ipv6, tcp, udp } from "@periscope/testing";

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMP = 1;
const PROTO_ICMPV6 = 58;

/** One packet of the mix and how often it repeats back to back (a burst on one flow). */
export interface MixEntry {
  readonly name: string;
  /** Ethernet frame. */
  readonly packet: Uint8Array;
  readonly direction: "ingress" | "egress";
  /** Consecutive copies per turn; the share of this entry in the mix is proportional to it. */
  readonly burst: number;
  /** Length on the wire when `packet` is a cut capture (default: its length). */
  readonly wireLen?: number;
  /** When it was captured, ns since the capture's first packet (captures only). */
  readonly atNs?: number;
}

interface Pod {
  readonly name: string;
  readonly namespace: string;
  readonly app: string;
  readonly v4: string;
  readonly v6: string;
}

const PODS: readonly Pod[] = [
  {
    name: "frontend-7d9f-x2kq",
    namespace: "shop",
    app: "frontend",
    v4: "10.200.0.11",
    v6: "fd00:200::11",
  },
  { name: "cart-5c4b-m8rt", namespace: "shop", app: "cart", v4: "10.200.0.12", v6: "fd00:200::12" },
  {
    name: "checkout-6f8d-p3vn",
    namespace: "shop",
    app: "checkout",
    v4: "10.200.0.13",
    v6: "fd00:200::13",
  },
  {
    name: "payments-84c7-j6wd",
    namespace: "payments",
    app: "payments",
    v4: "10.200.0.14",
    v6: "fd00:200::14",
  },
  { name: "redis-0", namespace: "shop", app: "redis", v4: "10.200.0.15", v6: "fd00:200::15" },
  {
    name: "coredns-5d78-q9zl",
    namespace: "kube-system",
    app: "kube-dns",
    v4: "10.200.0.53",
    v6: "fd00:200::53",
  },
];
const WORLD_V4 = ["192.0.2.10", "198.51.100.20", "203.0.113.30"];
const WORLD_V6 = ["2001:db8::10", "2001:db8::20"];

/** Endpoint records of the mix's pods (both address families), as the KV bucket holds them. */
export const MIX_ENDPOINTS: readonly EndpointRecord[] = PODS.flatMap((p) =>
  [p.v4, p.v6].map((ip) => ({
    ip,
    namespace: p.namespace,
    podName: p.name,
    labels: [`k8s:app=${p.app}`, `k8s:io.kubernetes.pod.namespace=${p.namespace}`],
    nodeName: "bench-node",
  })),
);

function pod(i: number): Pod {
  const p = PODS[i % PODS.length];
  if (p === undefined) throw new RangeError(`no pod ${i}`);
  return p;
}

function pick<T>(list: readonly T[], i: number): T {
  const v = list[i % list.length];
  if (v === undefined) throw new RangeError(`empty list`);
  return v;
}

function payload(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

/** Frames of one IP packet in either family. */
function ipFrame(v6: boolean, src: string, dst: string, proto: number, l4: Uint8Array): Uint8Array {
  return v6
    ? ethernet({ etherType: ETH_IPV6 }, ipv6({ src, dst, nextHeader: proto }, l4))
    : ethernet({ etherType: ETH_IPV4 }, ipv4({ src, dst, protocol: proto }, l4));
}

/** A TCP connection client → server seen on the client's device: egress out, ingress back. */
function tcpConnection(
  name: string,
  v6: boolean,
  client: string,
  server: string,
  sport: number,
  dport: number,
  dataBurst: number,
): MixEntry[] {
  const out = (flags: Parameters<typeof tcp>[2], data = 0): Uint8Array =>
    ipFrame(v6, client, server, PROTO_TCP, tcp(sport, dport, flags, payload(data)));
  const back = (flags: Parameters<typeof tcp>[2], data = 0): Uint8Array =>
    ipFrame(v6, server, client, PROTO_TCP, tcp(dport, sport, flags, payload(data)));
  return [
    { name: `${name}-syn`, packet: out(["SYN"]), direction: "egress", burst: 1 },
    { name: `${name}-synack`, packet: back(["SYN", "ACK"]), direction: "ingress", burst: 1 },
    { name: `${name}-req`, packet: out(["PSH", "ACK"], 320), direction: "egress", burst: 2 },
    { name: `${name}-data`, packet: back(["ACK"], 1400), direction: "ingress", burst: dataBurst },
    { name: `${name}-ack`, packet: out(["ACK"]), direction: "egress", burst: dataBurst / 2 },
    { name: `${name}-fin`, packet: out(["FIN", "ACK"]), direction: "egress", burst: 1 },
    { name: `${name}-finack`, packet: back(["FIN", "ACK"]), direction: "ingress", burst: 1 },
  ];
}

/** A DNS query from a pod to the cluster DNS and its answer. */
function dnsExchange(v6: boolean, client: Pod, sport: number): MixEntry[] {
  const dns = pod(5);
  const c = v6 ? client.v6 : client.v4;
  const s = v6 ? dns.v6 : dns.v4;
  const fam = v6 ? "v6" : "v4";
  return [
    {
      name: `dns-${fam}-query`,
      packet: ipFrame(v6, c, s, PROTO_UDP, udp(sport, 53, payload(45))),
      direction: "egress",
      burst: 1,
    },
    {
      name: `dns-${fam}-answer`,
      packet: ipFrame(v6, s, c, PROTO_UDP, udp(53, sport, payload(120))),
      direction: "ingress",
      burst: 1,
    },
  ];
}

/** ICMP echo request and reply between a pod and `peer`. */
function ping(v6: boolean, from: string, peer: string): MixEntry[] {
  const proto = v6 ? PROTO_ICMPV6 : PROTO_ICMP;
  const [req, rep] = v6 ? [128, 129] : [8, 0];
  const fam = v6 ? "v6" : "v4";
  return [
    {
      name: `icmp-${fam}-echo`,
      packet: ipFrame(v6, from, peer, proto, icmp(req, 0, payload(56))),
      direction: "egress",
      burst: 1,
    },
    {
      name: `icmp-${fam}-reply`,
      packet: ipFrame(v6, peer, from, proto, icmp(rep, 0, payload(56))),
      direction: "ingress",
      burst: 1,
    },
  ];
}

/**
 * The mix, in the order the pipeline bench cycles through it. About 70% TCP (data
 * segments dominate), 20% UDP, 10% ICMP; about a third IPv6; most packets have a
 * pod on both ends, some one pod and a world address.
 */
export function packetMix(): MixEntry[] {
  const mix: MixEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const a = pod(i);
    const b = pod(i + 1);
    const v6 = i % 3 === 2;
    const sport = 40_000 + i * 17;
    mix.push(
      ...tcpConnection(`tcp-pod-${i}`, v6, v6 ? a.v6 : a.v4, v6 ? b.v6 : b.v4, sport, 8080, 8),
    );
    const world = v6 ? pick(WORLD_V6, i) : pick(WORLD_V4, i);
    mix.push(...tcpConnection(`tcp-world-${i}`, v6, v6 ? a.v6 : a.v4, world, sport + 1, 443, 4));
    mix.push(...dnsExchange(false, a, 50_000 + i), ...dnsExchange(true, a, 51_000 + i));
    mix.push({
      name: `quic-${i}`,
      packet: ipFrame(v6, world, v6 ? a.v6 : a.v4, PROTO_UDP, udp(443, sport + 2, payload(1200))),
      direction: "ingress",
      burst: 3,
    });
    mix.push(...ping(false, a.v4, b.v4), ...ping(true, a.v6, pick(WORLD_V6, i)));
  }
  return mix;
}

/** Records one turn through {@link packetMix} produces. */
export function mixCycleLength(mix: readonly MixEntry[]): number {
  return mix.reduce((n, e) => n + e.burst, 0);
}

/** Where the real-traffic capture of the enricher bench is kept (made by bench/mix-capture.ts). */
export const MIX_CAPTURE_PATH = `${import.meta.dir}/testdata/enricher-mix.pcap.gz`;
/** Bytes tcpdump keeps per packet of that capture (the longest default capture rule). */
export const CAPTURE_SNAPLEN = 1024;

/** Reads a big-endian u16. */
const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);

/** L4 offset and protocol of an Ethernet/IPv4/IPv6 packet (IPv6 without extension headers). */
export function transportOf(p: Uint8Array): { off: number; proto: number } | undefined {
  const et = u16(p, 12);
  if (et === ETH_IPV4) return { off: 14 + ((p[14] ?? 0) & 0x0f) * 4, proto: p[23] ?? 0 };
  if (et === ETH_IPV6) return { off: 54, proto: p[20] ?? 0 };
  return undefined;
}

/**
 * Bytes the collector captures of this packet with its default capture rules:
 * 512 for DNS (UDP/TCP 53), 1024 for HTTP (TCP 80, 8080), else the default 128.
 */
export function defaultCaptureLen(p: Uint8Array): number {
  const t = transportOf(p);
  if (t !== undefined && (t.proto === PROTO_TCP || t.proto === PROTO_UDP)) {
    const ports = [u16(p, t.off), u16(p, t.off + 2)];
    if (ports.includes(53)) return 512;
    if (t.proto === PROTO_TCP && (ports.includes(80) || ports.includes(8080))) return 1024;
  }
  return DEFAULT_CAPTURE;
}
/** Addresses of the capture's client and server namespaces (tests' veth pair). */
export const CAPTURE_CLIENT = { v4: "10.231.0.1", v6: "fd00:231::1" } as const;
export const CAPTURE_SERVER = { v4: "10.231.0.2", v6: "fd00:231::2" } as const;

/** Endpoint records of the capture's two namespaces, as pods. */
export const CAPTURE_ENDPOINTS: readonly EndpointRecord[] = [
  { pod: "frontend-7d9f-x2kq", app: "frontend", addrs: CAPTURE_CLIENT },
  { pod: "web-5c4b-m8rt", app: "web", addrs: CAPTURE_SERVER },
].flatMap((p) =>
  [p.addrs.v4, p.addrs.v6].map((ip) => ({
    ip,
    namespace: "shop",
    podName: p.pod,
    labels: [`k8s:app=${p.app}`, "k8s:io.kubernetes.pod.namespace=shop"],
    nodeName: "bench-node",
  })),
);

/**
 * The packets of the real-traffic capture (HTTP/1.1 on 80 and 8080 over IPv4 and IPv6,
 * a bulk download, DNS over UDP and TCP, ICMP echo, other UDP), in capture order, as
 * seen on the client's device: its own packets leave (egress), the rest arrive.
 */
export async function captureMix(): Promise<MixEntry[]> {
  const pcap = Bun.gunzipSync(new Uint8Array(await Bun.file(MIX_CAPTURE_PATH).arrayBuffer()));
  const view = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) {
    throw new Error(`${MIX_CAPTURE_PATH}: not a little-endian pcap (magic ${magic.toString(16)})`);
  }
  const clientMac = pcap.subarray(24 + 16 + 6, 24 + 16 + 12); // source of the first packet
  const fracNs = magic === 0xa1b23c4d ? 1 : 1000;
  const out: MixEntry[] = [];
  let firstNs: number | undefined;
  for (let off = 24; off + 16 <= pcap.length; ) {
    const atNs = view.getUint32(off, true) * 1e9 + view.getUint32(off + 4, true) * fracNs;
    firstNs ??= atNs;
    const capLen = view.getUint32(off + 8, true);
    const wireLen = view.getUint32(off + 12, true);
    const packet = pcap.slice(off + 16, off + 16 + capLen);
    off += 16 + capLen;
    const fromClient = packet.subarray(6, 12).every((b, i) => b === clientMac[i]);
    out.push({
      name: `capture-${out.length}`,
      packet,
      direction: fromClient ? "egress" : "ingress",
      burst: 1,
      wireLen,
      atNs: atNs - firstNs,
    });
  }
  return out;
}
