import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@periscope/proto";

/**
 * grpc.health.v1 (https://github.com/grpc/grpc/blob/master/doc/health-checking.md):
 * the hubble CLI's `status` and Kubernetes probes call `Health/Check`.
 */
export { Health as HealthService, ServingStatus };

/**
 * Service names Check answers for: "" (the whole server), the Observer API and the
 * name Hubble registers it under, which `hubble status` asks for.
 */
export const HEALTH_SERVICES: ReadonlySet<string> = new Set([
  "",
  "observer.Observer",
  "hubble.server.Observer",
]);

/**
 * Registers grpc.health.v1.Health: SERVING while `serving()` is true, NOT_SERVING
 * otherwise; unknown service names get NotFound like grpc-go's health server. Watch sends
 * the current status and then follows changes until the client leaves or `stopped` aborts.
 */
export function healthRoutes(
  serving: () => boolean,
  stopped: AbortSignal,
): (router: ConnectRouter) => void {
  const status = (service: string): ServingStatus => {
    if (!HEALTH_SERVICES.has(service)) throw new ConnectError("unknown service", Code.NotFound);
    return serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return (router) => {
    router.service(Health, {
      check(req: HealthCheckRequest) {
        return create(HealthCheckResponseSchema, { status: status(req.service) });
      },
      async *watch(req: HealthCheckRequest, ctx) {
        const signal = AbortSignal.any([ctx.signal, stopped]);
        let last: ServingStatus | undefined;
        while (!signal.aborted) {
          const now = status(req.service);
          if (now !== last) {
            last = now;
            yield create(HealthCheckResponseSchema, { status: now });
          }
          // Readiness follows the NATS connection; re-check once a second.
          await new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              signal.removeEventListener("abort", done);
              resolve();
            };
            const timer = setTimeout(done, 1000);
            signal.addEventListener("abort", done, { once: true });
          });
        }
      },
    });
  };
}
