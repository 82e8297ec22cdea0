/**
 * UI development without the BPF stack: starts nats-server and an observer serving
 * ui/dist, and publishes made-up flows (pods in two namespaces, world, a drop with its
 * reason, HTTP latencies) at `--rate` flows/s. Prints the URL; Ctrl-C stops.
 *   bun run ui/dev/feed.ts [--rate 50] [--port 0] [--bearer-token-file FILE]
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connect } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { parseConfig } from "@periscope/observer/src/config.ts";
import { startObserver } from "@periscope/observer/src/server.ts";
import {
  EndpointSchema,
  type Flow,
  FlowBatchSchema,
  FlowSchema,
  FlowType,
  GetFlowsResponseSchema,
  IPSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { startLocalNats } from "@periscope/testing";

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const rate = Number(arg("rate", "50"));
const port = arg("port", "0");
/** Set: the observer requires one of the file's bearer tokens (the page's login). */
const tokenFile = arg("bearer-token-file", "");

const PODS = [
  ["demo", "client", "10.200.0.2"],
  ["demo", "server", "10.200.0.3"],
  ["demo", "db", "10.200.0.4"],
  ["shop", "web", "10.201.0.2"],
] as const;

/** One made-up flow number `i`. */
export function demoFlow(i: number, nowMs: number): Flow {
  const kind = i % 10;
  const [sns, spod, sip] = PODS[kind < 5 ? 0 : 3] as (typeof PODS)[number];
  const [dns, dpod, dip] = PODS[kind < 3 ? 1 : kind < 5 ? 2 : 1] as (typeof PODS)[number];
  const drop = kind === 9;
  const world = kind === 8;
  return create(FlowSchema, {
    time: timestampFromMs(nowMs),
    uuid: `dev-${i}`,
    nodeName: "dev",
    verdict: drop ? Verdict.DROPPED : Verdict.FORWARDED,
    ...(drop ? { dropReason: 133, extDropReasonDesc: "POLICY_DENIED" } : {}),
    Type: kind === 1 ? FlowType.L7 : FlowType.L3_L4,
    IP: create(IPSchema, {
      source: sip,
      destination: world ? "93.184.216.34" : dip,
      ipVersion: IPVersion.IPv4,
    }),
    l4: {
      $typeName: "flow.Layer4",
      protocol: {
        case: "TCP",
        value: {
          $typeName: "flow.TCP",
          sourcePort: 40000 + (i % 1000),
          destinationPort: world ? 443 : kind < 3 ? 8080 : 5432,
        },
      },
    },
    ...(kind === 1
      ? {
          l7: {
            $typeName: "flow.Layer7",
            type: 2,
            latencyNs: BigInt(1_000_000 + (i % 50) * 200_000),
            record: {
              case: "http",
              value: {
                $typeName: "flow.HTTP",
                code: 200,
                method: "GET",
                url: "http://server/api",
                protocol: "HTTP/1.1",
                headers: [],
              },
            },
          },
        }
      : {}),
    source: create(EndpointSchema, { namespace: sns, podName: spod, labels: [`k8s:app=${spod}`] }),
    destination: world
      ? create(EndpointSchema, { identity: 2, labels: ["reserved:world"] })
      : create(EndpointSchema, { namespace: dns, podName: dpod, labels: [`k8s:app=${dpod}`] }),
    Summary: drop ? "TCP Flags: SYN (policy denied)" : "TCP Flags: ACK",
  });
}

if (import.meta.main) {
  const nats = await startLocalNats({});
  const nc = await connect({ servers: nats.url });
  const observer = await startObserver(
    parseConfig(
      [
        ...["--listen-address", `127.0.0.1:${port}`, "--nats-url", nats.url],
        ...(tokenFile ? ["--bearer-token-file", tokenFile] : []),
      ],
      {
        PERISCOPE_NODE_NAME: "dev",
      },
    ),
    { log: createLogger("observer", "warn"), noOps: true },
  );
  console.log(`${observer.url}/`);
  let i = 0;
  const tick = 100;
  const timer = setInterval(() => {
    const n = Math.max(1, Math.round((rate * tick) / 1000));
    const now = Date.now();
    const responses = [];
    for (let k = 0; k < n; k++) {
      const flow = demoFlow(i++, now);
      responses.push(
        create(GetFlowsResponseSchema, {
          nodeName: "dev",
          time: flow.time,
          responseTypes: { case: "flow", value: flow },
        }),
      );
    }
    nc.publish(
      subjects.flows("dev"),
      toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses })),
    );
  }, tick);
  const stop = async (): Promise<void> => {
    clearInterval(timer);
    await observer.stop();
    await nc.close();
    await nats.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
