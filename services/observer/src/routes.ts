import type { ConnectRouter } from "@connectrpc/connect";
import { Observer, Peer } from "@periscope/proto";
import { createObserverService, type ObserverDeps } from "./observer.ts";
import { createPeerService } from "./peer.ts";

/**
 * Registers the observer's Connect/gRPC services on `router`. Used both by the real
 * HTTP/2 server and by in-memory tests (`createRouterTransport(observerRoutes(deps))`).
 */
export function observerRoutes(deps: ObserverDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(Observer, createObserverService(deps));
    router.service(Peer, createPeerService(deps));
  };
}
