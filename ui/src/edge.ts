/**
 * The service map's node and edge shapes and the helpers a renderer needs (pure, no
 * layout library): shared by the graph model in the worker and the map on the page.
 */

/** Verdict names an edge is colored by. */
export type EdgeVerdict = "FORWARDED" | "DROPPED" | "AUDIT";

/** What a node stands for. */
export type NodeKind = "pod" | "world" | "host" | "container" | "process" | "ip";

/** An endpoint on the map. */
export interface MapNode {
  readonly id: string;
  readonly label: string;
  /** "" for world, host and bare addresses. */
  readonly namespace: string;
  readonly kind: NodeKind;
  x: number;
  y: number;
  lastSeenMs: number;
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** An observed connection. */
export interface MapEdge {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  /** "tcp", "udp", "icmp", "sctp" or "other". */
  readonly protocol: string;
  /** Destination port, 0 when the protocol has none. */
  readonly port: number;
  flows: number;
  /** Bytes where flows carry them (0 = unknown). */
  bytes: number;
  /** "client>server" address pairs seen (newest few): the flow stats join (bytes.ts). */
  addrs?: string[];
  readonly verdicts: Record<EdgeVerdict, number>;
  /** Drop reason description → count. */
  readonly dropReasons: Map<string, number>;
  /** Recent L7 latencies in ms (bounded). */
  readonly http: number[];
  readonly dns: number[];
  lastSeenMs: number;
}

/** The edge's overall verdict: DROPPED if any flow was dropped, then AUDIT, FORWARDED. */
export function edgeVerdict(e: MapEdge): EdgeVerdict {
  if (e.verdicts.DROPPED > 0) return "DROPPED";
  if (e.verdicts.AUDIT > 0) return "AUDIT";
  return "FORWARDED";
}

/** p50/p90/p99 (nearest rank) of `samples`, undefined when empty. */
export function percentiles(samples: readonly number[]): Percentiles | undefined {
  if (samples.length === 0) return undefined;
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0;
  return { count: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** Node box size used by the layout and the renderer. */
export const NODE_SIZE = { width: 150, height: 40 } as const;
