import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { pause } from "@periscope/model";
import {
  type ChangeNotification,
  ChangeNotificationSchema,
  ChangeNotificationType,
  type Peer,
} from "@periscope/proto";
import { liveCollectors } from "./nodes.ts";
import type { PresenceSource } from "./presence.ts";
import type { FlowStore } from "./store.ts";

/** What the peer service needs. */
export interface PeerDeps {
  readonly store: FlowStore;
  readonly presence?: PresenceSource | undefined;
  /** How often the peer set is compared with the last one sent, ms (default 250). */
  readonly peerPollMs?: number | undefined;
}

/**
 * The peer set: nodes whose collector heartbeats are live; without a presence view,
 * the nodes that sent flows recently.
 */
export function currentPeers(deps: PeerDeps): Set<string> {
  if (deps.presence?.live) return new Set(liveCollectors(deps.presence).keys());
  return new Set(deps.store.nodes().connected.map((n) => n.name));
}

const note = (name: string, type: ChangeNotificationType): ChangeNotification =>
  create(ChangeNotificationSchema, { name, address: "", type });

/**
 * The `peer.Peer` implementation Hubble Relay subscribes to: one PEER_ADDED per known
 * node, then PEER_ADDED / PEER_DELETED as collectors start and leave. Collectors serve
 * no API, so `address` is empty and `tls` unset. Ends with the client or at shutdown.
 */
export function createPeerService(deps: PeerDeps): ServiceImpl<typeof Peer> {
  const pollMs = deps.peerPollMs ?? 250;
  return {
    async *notify(_req, ctx) {
      let sent = new Set<string>();
      while (!ctx.signal.aborted && !deps.store.ring.closed) {
        const now = currentPeers(deps);
        for (const name of [...now].sort()) {
          if (!sent.has(name)) yield note(name, ChangeNotificationType.PEER_ADDED);
        }
        for (const name of [...sent].sort()) {
          if (!now.has(name)) yield note(name, ChangeNotificationType.PEER_DELETED);
        }
        sent = now;
        await pause(pollMs, ctx.signal);
      }
    },
  };
}
