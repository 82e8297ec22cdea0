/**
 * Bytes and packets per map edge from the observer's flow stats (periscope.flowstats.v1,
 * summed from the collectors' flow records; flows carry no byte counts). Pure, no DOM: the
 * graph model notes each edge's addresses with {@link noteEdgeAddrs}, the page joins a
 * {@link ByteTable} to an edge with {@link ByteTable.forEdge}.
 *
 * The join: an edge `client->server:proto/port` seen between addresses C and S sends
 * C→S under the destination port (`PORT_SIDE_DESTINATION`, port) and gets S→C under the
 * source port (`PORT_SIDE_SOURCE`, port); the sums of every address pair of the edge.
 */

/** Address pairs kept per edge (newest). */
export const EDGE_ADDR_PAIRS = 16;

/** periscope.flowstats.v1.PortSide values. */
const SIDE_DESTINATION = 1;
const SIDE_SOURCE = 2;

/** The fields of a periscope.flowstats.v1.FlowStat the join reads. */
export interface FlowStatLike {
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly protocol: number;
  readonly port: number;
  readonly portSide: number;
  readonly bytes: bigint;
  readonly packets: bigint;
}

/** Bytes and packets of one direction. */
export interface ByteCounts {
  bytes: bigint;
  packets: bigint;
}

/** An edge's traffic: client → server and server → client; undefined = no records. */
export interface EdgeBytes {
  readonly forward: ByteCounts | undefined;
  readonly reverse: ByteCounts | undefined;
}

/** What the join needs of an edge. */
export interface EdgeKey {
  readonly protocol: string;
  readonly port: number;
  /** "client>server" address pairs. */
  readonly addrs?: readonly string[];
}

/**
 * Notes that a flow of `edge` went between `src` and `dst` (`reply`: from the server), as
 * the pair "client>server"; keeps the newest {@link EDGE_ADDR_PAIRS}.
 */
export function noteEdgeAddrs(
  edge: { addrs?: string[] },
  src: string,
  dst: string,
  reply: boolean,
): void {
  if (!src || !dst) return;
  const pair = reply ? `${dst}>${src}` : `${src}>${dst}`;
  edge.addrs ??= [];
  const list = edge.addrs;
  if (list[list.length - 1] === pair) return;
  const at = list.indexOf(pair);
  if (at >= 0) list.splice(at, 1);
  list.push(pair);
  if (list.length > EDGE_ADDR_PAIRS) list.shift();
}

/** IPPROTO_* of an edge protocol name ("icmp" by the address family), undefined for "other". */
export function protocolNumber(protocol: string, addr: string): number | undefined {
  switch (protocol) {
    case "tcp":
      return 6;
    case "udp":
      return 17;
    case "sctp":
      return 132;
    case "icmp":
      return addr.includes(":") ? 58 : 1;
    default:
      return undefined;
  }
}

function key(src: string, dst: string, proto: number, side: number, port: number): string {
  return `${src}|${dst}|${proto}|${side}|${port}`;
}

/** A GetFlowStats answer indexed for the join. */
export class ByteTable {
  readonly #index = new Map<string, ByteCounts>();

  constructor(stats: Iterable<FlowStatLike>) {
    for (const s of stats) {
      const k = key(s.sourceIp, s.destinationIp, s.protocol, s.portSide, s.port);
      const c = this.#index.get(k);
      if (c === undefined) this.#index.set(k, { bytes: s.bytes, packets: s.packets });
      else {
        c.bytes += s.bytes;
        c.packets += s.packets;
      }
    }
  }

  /** Entries indexed. */
  get size(): number {
    return this.#index.size;
  }

  /** The edge's bytes and packets in both directions over all its address pairs. */
  forEdge(edge: EdgeKey): EdgeBytes {
    let forward: ByteCounts | undefined;
    let reverse: ByteCounts | undefined;
    const add = (to: ByteCounts | undefined, c: ByteCounts | undefined) =>
      c === undefined
        ? to
        : { bytes: (to?.bytes ?? 0n) + c.bytes, packets: (to?.packets ?? 0n) + c.packets };
    for (const pair of edge.addrs ?? []) {
      const [client = "", server = ""] = pair.split(">");
      const proto = protocolNumber(edge.protocol, client);
      if (proto === undefined) continue;
      forward = add(
        forward,
        this.#index.get(key(client, server, proto, SIDE_DESTINATION, edge.port)),
      );
      reverse = add(reverse, this.#index.get(key(server, client, proto, SIDE_SOURCE, edge.port)));
    }
    return { forward, reverse };
  }
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** "1.5 MiB (1,572,864 B, 1,100 packets)", or "unknown". */
export function formatCounts(c: ByteCounts | undefined): string {
  if (c === undefined) return "unknown";
  let v = Number(c.bytes);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const human = u === 0 ? `${c.bytes} B` : `${v.toFixed(1)} ${UNITS[u]}`;
  const n = (x: bigint) => x.toLocaleString("en-US");
  return u === 0
    ? `${human}, ${n(c.packets)} packets`
    : `${human} (${n(c.bytes)} B), ${n(c.packets)} packets`;
}
