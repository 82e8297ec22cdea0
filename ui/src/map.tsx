/**
 * The service map: namespaces as boxes, endpoints as nodes, connections as arrows colored
 * by verdict, drawn in SVG at the positions the graph model keeps. Beside it, a list of
 * the same nodes and edges (the accessible mirror) with each edge's details.
 */
import { useState } from "preact/hooks";
import { EdgeBytesLine } from "./bytes-view.ts";
import { edgeVerdict, type MapEdge, type MapNode, NODE_SIZE, percentiles } from "./edge.ts";

const PAD = 16;

/** Bounding boxes of each namespace's nodes. */
function namespaceBoxes(
  nodes: Iterable<MapNode>,
): { ns: string; x: number; y: number; w: number; h: number }[] {
  const boxes = new Map<string, { x0: number; y0: number; x1: number; y1: number }>();
  for (const n of nodes) {
    if (!n.namespace || Number.isNaN(n.x)) continue;
    const b = boxes.get(n.namespace) ?? { x0: n.x, y0: n.y, x1: n.x, y1: n.y };
    b.x0 = Math.min(b.x0, n.x);
    b.y0 = Math.min(b.y0, n.y);
    b.x1 = Math.max(b.x1, n.x);
    b.y1 = Math.max(b.y1, n.y);
    boxes.set(n.namespace, b);
  }
  return [...boxes].map(([ns, b]) => ({
    ns,
    x: b.x0 - NODE_SIZE.width / 2 - PAD,
    y: b.y0 - NODE_SIZE.height / 2 - PAD - 14,
    w: b.x1 - b.x0 + NODE_SIZE.width + 2 * PAD,
    h: b.y1 - b.y0 + NODE_SIZE.height + 2 * PAD + 14,
  }));
}

/** "12.3 ms" */
const ms = (v: number): string => `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;

/** One edge's details: counts, bytes, drop reasons, L7 latency percentiles. */
export function EdgeDetails(props: { edge: MapEdge }) {
  const e = props.edge;
  const http = percentiles(e.http);
  const dns = percentiles(e.dns);
  return (
    <div class="edge-details" data-testid="edge-details">
      <div>
        flows: {e.flows} (forwarded {e.verdicts.FORWARDED}, dropped {e.verdicts.DROPPED}, audit{" "}
        {e.verdicts.AUDIT})
      </div>
      <EdgeBytesLine edge={e} />
      {e.dropReasons.size > 0 && (
        <div data-testid="drop-reasons">
          drop reasons:{" "}
          {[...e.dropReasons].map(([r, n]) => (
            <span class="reason" key={r}>
              {r} ×{n}{" "}
            </span>
          ))}
        </div>
      )}
      {http && (
        <div data-testid="latency-http">
          HTTP latency ({http.count}): p50 {ms(http.p50)} · p90 {ms(http.p90)} · p99 {ms(http.p99)}
        </div>
      )}
      {dns && (
        <div data-testid="latency-dns">
          DNS latency ({dns.count}): p50 {ms(dns.p50)} · p90 {ms(dns.p90)} · p99 {ms(dns.p99)}
        </div>
      )}
      <div>last seen: {new Date(e.lastSeenMs).toISOString()}</div>
    </div>
  );
}

/**
 * The map and its list mirror, from the nodes and edges the stream worker sent;
 * `onRelayout` asks it to re-place every node.
 */
export function ServiceMap(props: {
  graph: { nodes: ReadonlyMap<string, MapNode>; edges: ReadonlyMap<string, MapEdge> };
  onRelayout: () => void;
}) {
  const { graph } = props;
  const [selected, setSelected] = useState<string | undefined>();
  const nodes = [...graph.nodes.values()].filter((n) => !Number.isNaN(n.x));
  const edges = [...graph.edges.values()];
  let x0 = 0;
  let y0 = 0;
  let x1 = 400;
  let y1 = 200;
  if (nodes.length > 0) {
    x0 = Math.min(...nodes.map((n) => n.x)) - NODE_SIZE.width;
    y0 = Math.min(...nodes.map((n) => n.y)) - NODE_SIZE.height * 2;
    x1 = Math.max(...nodes.map((n) => n.x)) + NODE_SIZE.width;
    y1 = Math.max(...nodes.map((n) => n.y)) + NODE_SIZE.height * 2;
  }
  const sel = selected !== undefined ? graph.edges.get(selected) : undefined;
  return (
    <section class="map" data-testid="service-map">
      <svg viewBox={`${x0} ${y0} ${x1 - x0} ${y1 - y0}`} role="img" aria-label="service map">
        <defs>
          {(["FORWARDED", "DROPPED", "AUDIT"] as const).map((v) => (
            <marker
              key={v}
              id={`arrow-${v}`}
              viewBox="0 0 10 10"
              refX="10"
              refY="5"
              markerWidth="6"
              markerHeight="6"
              orient="auto-start-reverse"
            >
              <path d="M 0 0 L 10 5 L 0 10 z" class={`arrow ${v.toLowerCase()}`} />
            </marker>
          ))}
        </defs>
        {namespaceBoxes(nodes).map((b) => (
          <g class="namespace" key={`ns:${b.ns}`}>
            <rect x={b.x} y={b.y} width={b.w} height={b.h} rx="8" />
            <text x={b.x + 8} y={b.y + 14}>
              {b.ns}
            </text>
          </g>
        ))}
        {edges.map((e) => {
          const a = graph.nodes.get(e.source);
          const b = graph.nodes.get(e.target);
          if (!a || !b || e.source === e.target || Number.isNaN(a.x) || Number.isNaN(b.x))
            return null;
          const v = edgeVerdict(e);
          const ax = a.x + (b.x >= a.x ? NODE_SIZE.width / 2 : -NODE_SIZE.width / 2);
          const bx = b.x + (b.x >= a.x ? -NODE_SIZE.width / 2 : NODE_SIZE.width / 2);
          const mx = (ax + bx) / 2;
          return (
            // biome-ignore lint/a11y/useSemanticElements: SVG has no <button>; the list beside the map has real ones
            <g
              key={e.id}
              class={`edge ${v.toLowerCase()}${selected === e.id ? " selected" : ""}`}
              data-id={e.id}
              role="button"
              tabIndex={0}
              aria-label={e.id}
              onClick={() => setSelected(e.id)}
              onKeyDown={(ev) => {
                if (ev.key === "Enter") setSelected(e.id);
              }}
            >
              <path
                d={`M ${ax} ${a.y} C ${mx} ${a.y}, ${mx} ${b.y}, ${bx} ${b.y}`}
                marker-end={`url(#arrow-${v})`}
              />
              <text x={mx} y={(a.y + b.y) / 2 - 4}>
                {e.protocol}
                {e.port ? `/${e.port}` : ""}
              </text>
            </g>
          );
        })}
        {nodes.map((n) => (
          <g
            class={`node ${n.kind}`}
            key={n.id}
            data-id={n.id}
            transform={`translate(${n.x - NODE_SIZE.width / 2} ${n.y - NODE_SIZE.height / 2})`}
          >
            <rect width={NODE_SIZE.width} height={NODE_SIZE.height} rx="6" />
            <text x={NODE_SIZE.width / 2} y={NODE_SIZE.height / 2 + 4}>
              {n.label.length > 22 ? `${n.label.slice(0, 21)}…` : n.label}
            </text>
          </g>
        ))}
      </svg>
      <div class="mirror">
        <button type="button" onClick={props.onRelayout}>
          Re-layout
        </button>
        <h2>Nodes ({nodes.length})</h2>
        <ul>
          {nodes.map((n) => (
            <li key={n.id} data-testid="map-node" data-node-id={n.id} data-kind={n.kind}>
              {n.id}
            </li>
          ))}
        </ul>
        <h2>Connections ({edges.length})</h2>
        <ul>
          {edges.map((e) => {
            const v = edgeVerdict(e);
            return (
              <li
                key={e.id}
                data-testid="map-edge"
                data-edge-id={e.id}
                data-verdict={v}
                class={`${v.toLowerCase()}${selected === e.id ? " selected" : ""}`}
              >
                <button
                  type="button"
                  class="link"
                  onClick={() => setSelected(selected === e.id ? undefined : e.id)}
                >
                  {e.id} — {v} ({e.flows})
                </button>
                <EdgeDetails edge={e} />
              </li>
            );
          })}
        </ul>
        {sel === undefined && selected !== undefined && <p>connection evicted</p>}
      </div>
    </section>
  );
}
