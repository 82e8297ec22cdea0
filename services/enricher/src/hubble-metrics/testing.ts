/** Test-only helpers: hand-built flows and an exact reader of the exposition text. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { MESSAGE_TYPE, TRACE_SUBTYPE } from "@periscope/model";
import {
  type Flow,
  FlowSchema,
  IPVersion,
  L7FlowType,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";

/** Field values for a flow, as create() takes them (not a Flow message itself). */
type FlowInit = Exclude<MessageInitShape<typeof FlowSchema>, Flow>;

const frontend = { namespace: "shop", podName: "frontend-7d9f-x2x4k", labels: ["app=frontend"] };
const backend = { namespace: "shop", podName: "backend-0", labels: ["k8s:app=backend"] };

/** A forwarded to-network TCP packet from shop/frontend to shop/backend:8080 (override any field). */
export function tcpFlow(over: FlowInit = {}): Flow {
  return create(FlowSchema, {
    verdict: Verdict.FORWARDED,
    eventType: { type: MESSAGE_TYPE.TRACE, subType: TRACE_SUBTYPE.TO_NETWORK },
    IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: IPVersion.IPv4 },
    l4: {
      protocol: {
        case: "TCP",
        value: { sourcePort: 40000, destinationPort: 8080, flags: { SYN: true } },
      },
    },
    source: frontend,
    destination: backend,
    trafficDirection: TrafficDirection.EGRESS,
    isReply: false,
    ...over,
  });
}

/** A DNS L7 flow (query unless `reply`), frontend → backend. */
export function dnsFlow(
  dns: NonNullable<Extract<NonNullable<FlowInit["l7"]>["record"], { case: "dns" }>>["value"],
  reply: boolean,
  over: FlowInit = {},
): Flow {
  return create(FlowSchema, {
    verdict: Verdict.FORWARDED,
    eventType: { type: MESSAGE_TYPE.L7 },
    IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: IPVersion.IPv4 },
    l4: { protocol: { case: "UDP", value: { sourcePort: 5555, destinationPort: 53 } } },
    source: reply ? backend : frontend,
    destination: reply ? frontend : backend,
    isReply: reply,
    l7: {
      type: reply ? L7FlowType.RESPONSE : L7FlowType.REQUEST,
      record: { case: "dns", value: dns },
    },
    ...over,
  });
}

/** An HTTP L7 flow: a GET request, or its response with `code` after `latencyNs`. */
export function httpFlow(
  response?: { code: number; latencyNs: bigint },
  over: FlowInit = {},
): Flow {
  return create(FlowSchema, {
    verdict: Verdict.FORWARDED,
    eventType: { type: MESSAGE_TYPE.L7 },
    IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: IPVersion.IPv4 },
    l4: { protocol: { case: "TCP", value: { sourcePort: 40000, destinationPort: 8080 } } },
    source: response ? backend : frontend,
    destination: response ? frontend : backend,
    isReply: response !== undefined,
    trafficDirection: TrafficDirection.EGRESS,
    l7: {
      type: response ? L7FlowType.RESPONSE : L7FlowType.REQUEST,
      ...(response ? { latencyNs: response.latencyNs } : {}),
      record: {
        case: "http",
        value: {
          method: "GET",
          url: "http://backend/x",
          protocol: "HTTP/1.1",
          code: response?.code ?? 0,
        },
      },
    },
    ...over,
  });
}

/**
 * Samples of the exposition text: `name{a="1",b="2"}` (labels sorted by name) → value.
 * A sample without labels is just `name`.
 */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map((l) => `${l[1]}="${l[2]}"`)
      .sort();
    out.set(labels.length ? `${m[1]}{${labels.join(",")}}` : (m[1] ?? ""), Number(m[3]));
  }
  return out;
}

/** The key {@link samples} uses for `name` with `labels`. */
export function key(name: string, labels: Record<string, string | number>): string {
  const ls = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return ls.length ? `${name}{${ls.join(",")}}` : name;
}

/** Only the samples of `name` (and its _bucket/_sum/_count series). */
export function family(all: Map<string, number>, name: string): Map<string, number> {
  return new Map(
    [...all].filter(([k]) => k === name || k.startsWith(`${name}{`) || k.startsWith(`${name}_`)),
  );
}
