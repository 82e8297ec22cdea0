import { create, createFileRegistry, type DescMessage, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";

/**
 * grpc.health.v1 (https://github.com/grpc/grpc/blob/master/doc/health-checking.md),
 * described in code because it is the one foreign API the observer serves: the hubble
 * CLI's `status` and Kubernetes probes call `Health/Check`.
 */
const healthFile = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    {
      name: "HealthCheckRequest",
      field: [
        {
          name: "service",
          number: 1,
          label: FieldDescriptorProto_Label.OPTIONAL,
          type: FieldDescriptorProto_Type.STRING,
          jsonName: "service",
        },
      ],
    },
    {
      name: "HealthCheckResponse",
      field: [
        {
          name: "status",
          number: 1,
          label: FieldDescriptorProto_Label.OPTIONAL,
          type: FieldDescriptorProto_Type.ENUM,
          typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
          jsonName: "status",
        },
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        {
          name: "Check",
          inputType: ".grpc.health.v1.HealthCheckRequest",
          outputType: ".grpc.health.v1.HealthCheckResponse",
        },
        {
          name: "Watch",
          inputType: ".grpc.health.v1.HealthCheckRequest",
          outputType: ".grpc.health.v1.HealthCheckResponse",
          serverStreaming: true,
        },
      ],
    },
  ],
});

const registry = createFileRegistry(healthFile, () => undefined);

function lookup<T>(what: string, found: T | undefined): T {
  if (found === undefined) throw new Error(`grpc.health.v1 descriptor lacks ${what}`);
  return found;
}

/** The grpc.health.v1.Health service descriptor. */
export const HealthService: DescService = lookup(
  "Health",
  registry.getService("grpc.health.v1.Health"),
);
const ResponseSchema: DescMessage = lookup(
  "HealthCheckResponse",
  registry.getMessage("grpc.health.v1.HealthCheckResponse"),
);

/** HealthCheckResponse.ServingStatus values. */
export const ServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;

/** Service names Check answers for: "" (the whole server) and the Observer API. */
const KNOWN_SERVICES = new Set(["", "observer.Observer"]);

/**
 * Registers grpc.health.v1.Health: SERVING while `serving()` is true, NOT_SERVING
 * otherwise; unknown service names get NotFound like grpc-go's health server. Watch sends
 * the current status and then follows changes until the client leaves or `stopped` aborts.
 */
export function healthRoutes(
  serving: () => boolean,
  stopped: AbortSignal,
): (router: ConnectRouter) => void {
  const status = (service: string): number => {
    if (!KNOWN_SERVICES.has(service)) throw new ConnectError("unknown service", Code.NotFound);
    return serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return (router) => {
    router.service(HealthService, {
      check(req: { service?: string }) {
        return create(ResponseSchema, { status: status(req.service ?? "") });
      },
      async *watch(req: { service?: string }, ctx: { signal: AbortSignal }) {
        const signal = AbortSignal.any([ctx.signal, stopped]);
        let last = -1;
        while (!signal.aborted) {
          const now = status(req.service ?? "");
          if (now !== last) {
            last = now;
            yield create(ResponseSchema, { status: now });
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
