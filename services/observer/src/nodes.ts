import { create } from "@bufbuild/protobuf";
import type { PresenceBeat } from "@periscope/bus";
import { type Node, NodeSchema, NodeState, TLSSchema } from "@periscope/proto";
import { applyPresence, type PresenceSource } from "./presence.ts";
import type { FlowStore, NodeInfo } from "./store.ts";

/** The latest live collector beat per node name (the newest instance wins). */
export function liveCollectors(presence: PresenceSource | undefined): Map<string, PresenceBeat> {
  const out = new Map<string, PresenceBeat>();
  for (const b of presence?.live?.() ?? []) {
    if (b.service !== "collector") continue;
    const prev = out.get(b.node);
    if (!prev || b.startedMs > prev.startedMs) out.set(b.node, b);
  }
  return out;
}

/**
 * GetNodes' answer, as Hubble Relay fills observer.Node: every node that sent flows or
 * whose collector beats, sorted by name. `version` and uptime come from the collector's
 * heartbeat when it has one (else uptime counts from its first flow), `num_flows` is that
 * node's flows still in the ring, `seen_flows` all its flows since start, `max_flows` the
 * ring's capacity. Collectors serve no API, so `address` is empty and TLS is disabled.
 */
export function listNodes(
  store: FlowStore,
  presence: PresenceSource | undefined,
  nowMs: number = Date.now(),
): Node[] {
  const { connected, unavailable } = applyPresence(presence, store.nodes());
  const beats = liveCollectors(presence);
  const rows: { info: NodeInfo; state: NodeState }[] = [
    ...connected.map((info) => ({ info, state: NodeState.NODE_CONNECTED })),
    ...unavailable.map((info) => ({ info, state: NodeState.NODE_UNAVAILABLE })),
  ];
  const known = new Set(rows.map((r) => r.info.name));
  for (const [name, b] of beats) {
    if (known.has(name)) continue;
    const info = { name, firstSeenMs: b.startedMs, lastSeenMs: nowMs, seenFlows: 0, numFlows: 0 };
    rows.push({ info, state: NodeState.NODE_CONNECTED });
  }
  rows.sort((a, b) => (a.info.name < b.info.name ? -1 : a.info.name > b.info.name ? 1 : 0));
  return rows.map(({ info, state }) => {
    const beat = beats.get(info.name);
    const since = beat?.startedMs ?? info.firstSeenMs;
    return create(NodeSchema, {
      name: info.name,
      version: beat?.version ?? "",
      address: "",
      state,
      tls: create(TLSSchema, { enabled: false }),
      uptimeNs: BigInt(Math.max(0, nowMs - since)) * 1_000_000n,
      numFlows: BigInt(info.numFlows),
      maxFlows: BigInt(store.ring.capacity),
      seenFlows: BigInt(info.seenFlows),
    });
  });
}
