/**
 * The service map's model: flows in, nodes and edges out. Pure (no DOM), so the browser
 * app and the unit tests share it.
 *
 * - A node is an endpoint: `namespace/pod` when the pod is known, `world` and `host` as
 *   Hubble shows them, `container:<name>` / `process:<comm>` when that is all that is
 *   known, the IP address otherwise. Nodes are grouped by namespace.
 * - An edge is a connection `src->dst:proto/port` (the client's side first: replies are
 *   folded into their request's edge) with flow counts per verdict, bytes when a flow
 *   carries them, drop reasons and HTTP/DNS latency percentiles.
 * - Positions are kept: a node keeps the position it first got, so the map does not move
 *   as flows arrive; {@link GraphModel.evictIdle} drops edges (and then nodes) not seen for
 *   a while.
 */
import dagre from "@dagrejs/dagre";
import type { Endpoint, Flow } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { noteEdgeAddrs } from "./bytes.ts";
import { type EdgeVerdict, type MapEdge, type MapNode, NODE_SIZE } from "./edge.ts";
import type { MapChanges } from "./protocol.ts";

export {
  type EdgeVerdict,
  edgeVerdict,
  type MapEdge,
  type MapNode,
  NODE_SIZE,
  type NodeKind,
  type Percentiles,
  percentiles,
} from "./edge.ts";

/** Verdict numbers of flow.Verdict that color edges. */
const VERDICTS: Record<number, EdgeVerdict> = { 1: "FORWARDED", 2: "DROPPED", 4: "AUDIT" };
/** Latency samples kept per edge and kind. */
const LATENCY_SAMPLES = 256;
const { width: NODE_W, height: NODE_H } = NODE_SIZE;

/** Identity of an endpoint on the map. */
export function endpointNode(
  ep: Endpoint | undefined,
  ip: string,
): Pick<MapNode, "id" | "label" | "namespace" | "kind"> {
  const labels = ep?.labels ?? [];
  if (ep?.podName) {
    const ns = ep.namespace;
    return { id: `${ns}/${ep.podName}`, label: ep.podName, namespace: ns, kind: "pod" };
  }
  if (ep?.identity === 2 || labels.includes("reserved:world")) {
    return { id: "world", label: "world", namespace: "", kind: "world" };
  }
  if (ep?.identity === 1 || labels.includes("reserved:host")) {
    return { id: "host", label: "host", namespace: "", kind: "host" };
  }
  for (const kind of ["container", "process"] as const) {
    const w = ep?.workloads.find((x) => x.kind.toLowerCase() === kind);
    const l = labels.find((x) => x.startsWith(`${kind}:`));
    const name = w?.name ?? l?.slice(kind.length + 1);
    if (name) {
      const ns = ep?.namespace ?? "";
      const id = ns ? `${ns}/${kind}:${name}` : `${kind}:${name}`;
      return { id, label: `${kind}:${name}`, namespace: ns, kind };
    }
  }
  const addr = ip || "unknown";
  return { id: addr, label: addr, namespace: ep?.namespace ?? "", kind: "ip" };
}

/** Protocol name and source/destination ports of a flow. */
function l4Of(flow: Flow): { protocol: string; sport: number; dport: number } {
  const p = flow.l4?.protocol;
  switch (p?.case) {
    case "TCP":
    case "UDP":
    case "SCTP":
      return {
        protocol: p.case.toLowerCase(),
        sport: p.value.sourcePort,
        dport: p.value.destinationPort,
      };
    case "ICMPv4":
    case "ICMPv6":
      return { protocol: "icmp", sport: 0, dport: 0 };
    default:
      return { protocol: "other", sport: 0, dport: 0 };
  }
}

/** Whether the flow goes server → client (folded into the request's edge). */
function isReply(flow: Flow): boolean {
  if (flow.isReply !== undefined) return flow.isReply;
  return flow.reply;
}

/** What {@link GraphModel.takeChanges} returns. */
export type GraphChanges = MapChanges;

/** Options for {@link GraphModel}. */
export interface GraphOptions {
  /** Edges idle this long are dropped by {@link GraphModel.evictIdle}. Default 5 minutes. */
  idleMs?: number;
}

/** Flows → nodes and edges, aggregated, with kept positions. */
export class GraphModel {
  readonly nodes = new Map<string, MapNode>();
  readonly edges = new Map<string, MapEdge>();
  private readonly idleMs: number;
  /** Nodes added since the last {@link layout}. */
  private unplaced = new Set<string>();
  /** Bumped on every change, for renderers that memoise. */
  version = 0;
  /** What changed since the last {@link takeChanges}. */
  private changed: {
    nodes: Set<string>;
    edges: Set<string>;
    removedNodes: Set<string>;
    removedEdges: Set<string>;
    reset: boolean;
    /** Edges added since. */
    added: number;
  } = GraphModel.noChanges();

  private static noChanges() {
    return {
      nodes: new Set<string>(),
      edges: new Set<string>(),
      removedNodes: new Set<string>(),
      removedEdges: new Set<string>(),
      reset: false,
      added: 0,
    };
  }

  /**
   * Nodes and edges added or changed, and ids removed, since the last call (`reset`: the
   * model was cleared first). Nodes without a position yet are left for a later call.
   */
  takeChanges(): GraphChanges {
    const c = this.changed;
    this.changed = GraphModel.noChanges();
    const nodes: MapNode[] = [];
    for (const id of c.nodes) {
      const n = this.nodes.get(id);
      if (n === undefined) continue;
      if (Number.isNaN(n.x)) this.changed.nodes.add(id);
      else nodes.push(n);
    }
    const edges: MapEdge[] = [];
    for (const id of c.edges) {
      const e = this.edges.get(id);
      if (e !== undefined) edges.push(e);
    }
    return {
      reset: c.reset,
      nodes,
      edges,
      removedNodes: [...c.removedNodes],
      removedEdges: [...c.removedEdges],
    };
  }

  /**
   * Whether nodes or edges came or went since the last {@link takeChanges} (not only
   * counts): a renderer should hear of it without waiting.
   */
  hasShapeChanges(): boolean {
    const c = this.changed;
    return (
      c.reset ||
      c.added > 0 ||
      c.removedEdges.size > 0 ||
      c.removedNodes.size > 0 ||
      [...c.nodes].some((id) => !Number.isNaN(this.nodes.get(id)?.x ?? Number.NaN))
    );
  }

  /** Whether anything changed since the last {@link takeChanges}. */
  hasChanges(): boolean {
    const c = this.changed;
    return (
      c.reset ||
      c.edges.size > 0 ||
      c.removedEdges.size > 0 ||
      c.removedNodes.size > 0 ||
      [...c.nodes].some((id) => !Number.isNaN(this.nodes.get(id)?.x ?? Number.NaN))
    );
  }

  constructor(opts: GraphOptions = {}) {
    this.idleMs = opts.idleMs ?? 5 * 60_000;
  }

  /** Adds one flow; `nowMs` defaults to the flow's time. Returns the edge it counted on. */
  add(flow: Flow, nowMs?: number): MapEdge {
    const t =
      nowMs ?? (flow.time ? Number(flow.time.seconds) * 1000 + flow.time.nanos / 1e6 : Date.now());
    const reply = isReply(flow);
    const { protocol, sport, dport } = l4Of(flow);
    let src = endpointNode(flow.source, flow.IP?.source ?? "");
    let dst = endpointNode(flow.destination, flow.IP?.destination ?? "");
    let port = dport;
    if (reply) {
      [src, dst] = [dst, src];
      port = sport;
    }
    const a = this.touchNode(src, t);
    const b = this.touchNode(dst, t);
    const id = `${a.id}->${b.id}:${protocol}/${port}`;
    let e = this.edges.get(id);
    if (!e) {
      e = {
        id,
        source: a.id,
        target: b.id,
        protocol,
        port,
        flows: 0,
        bytes: 0,
        verdicts: { FORWARDED: 0, DROPPED: 0, AUDIT: 0 },
        dropReasons: new Map(),
        http: [],
        dns: [],
        lastSeenMs: t,
      };
      this.edges.set(id, e);
      this.changed.added++;
    }
    e.flows++;
    noteEdgeAddrs(e, flow.IP?.source ?? "", flow.IP?.destination ?? "", reply);
    this.changed.edges.add(id);
    e.lastSeenMs = Math.max(e.lastSeenMs, t);
    const v = VERDICTS[flow.verdict];
    if (v) e.verdicts[v]++;
    if (v === "DROPPED") {
      const reason =
        flow.extDropReasonDesc ||
        (flow.dropReasonDesc ? `reason ${flow.dropReasonDesc}` : `code ${flow.dropReason}`);
      e.dropReasons.set(reason, (e.dropReasons.get(reason) ?? 0) + 1);
    }
    const l7 = flow.l7;
    if (l7 && l7.latencyNs > 0n) {
      const ms = Number(l7.latencyNs) / 1e6;
      const list =
        l7.record.case === "http" ? e.http : l7.record.case === "dns" ? e.dns : undefined;
      if (list) {
        list.push(ms);
        if (list.length > LATENCY_SAMPLES) list.shift();
      }
    }
    this.version++;
    return e;
  }

  private touchNode(n: Pick<MapNode, "id" | "label" | "namespace" | "kind">, t: number): MapNode {
    let node = this.nodes.get(n.id);
    if (!node) {
      node = { ...n, x: Number.NaN, y: Number.NaN, lastSeenMs: t };
      this.nodes.set(n.id, node);
      this.unplaced.add(n.id);
      this.changed.nodes.add(n.id);
    }
    node.lastSeenMs = Math.max(node.lastSeenMs, t);
    return node;
  }

  /** Drops edges idle longer than the idle time at `nowMs`, then nodes left without edges. */
  evictIdle(nowMs: number): number {
    let evicted = 0;
    const cutoff = nowMs - this.idleMs;
    for (const [id, e] of this.edges) {
      if (e.lastSeenMs < cutoff) {
        this.edges.delete(id);
        this.changed.edges.delete(id);
        this.changed.removedEdges.add(id);
        evicted++;
      }
    }
    if (evicted === 0) return 0;
    const used = new Set<string>();
    for (const e of this.edges.values()) {
      used.add(e.source);
      used.add(e.target);
    }
    for (const id of this.nodes.keys()) {
      if (!used.has(id)) {
        this.nodes.delete(id);
        this.unplaced.delete(id);
        this.changed.nodes.delete(id);
        this.changed.removedNodes.add(id);
      }
    }
    this.version++;
    return evicted;
  }

  /** Forgets everything (new time window). */
  clear(): void {
    this.nodes.clear();
    this.edges.clear();
    this.unplaced.clear();
    this.changed = GraphModel.noChanges();
    this.changed.reset = true;
    this.version++;
  }

  /** Whether some nodes still need a position. */
  needsLayout(): boolean {
    return this.unplaced.size > 0;
  }

  /**
   * Gives positions to new nodes (dagre, left to right, namespaces as clusters). Placed
   * nodes never move; a new node whose spot is taken moves down until it is free.
   * `all` re-places every node.
   */
  layout(all = false): void {
    if (all) for (const id of this.nodes.keys()) this.unplaced.add(id);
    if (this.unplaced.size === 0) return;
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 80, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    const ids = [...this.nodes.keys()].sort();
    for (const id of ids) {
      const n = this.nodes.get(id) as MapNode;
      g.setNode(id, { width: NODE_W, height: NODE_H });
      if (n.namespace) {
        const cluster = `ns:${n.namespace}`;
        if (!g.hasNode(cluster)) g.setNode(cluster, {});
        g.setParent(id, cluster);
      }
    }
    for (const e of [...this.edges.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      if (e.source !== e.target) g.setEdge(e.source, e.target);
    }
    dagre.layout(g);
    const placed = [...this.nodes.values()].filter((n) => !this.unplaced.has(n.id));
    const taken = (x: number, y: number): boolean =>
      placed.some((p) => Math.abs(p.x - x) < NODE_W && Math.abs(p.y - y) < NODE_H + 8);
    for (const id of [...this.unplaced].sort()) {
      const n = this.nodes.get(id);
      const at = g.node(id);
      if (!n || !at) continue;
      let { x, y } = at;
      while (taken(x, y)) y += NODE_H + 16;
      n.x = x;
      n.y = y;
      placed.push(n);
      this.changed.nodes.add(id);
    }
    this.unplaced.clear();
    this.version++;
  }
}
