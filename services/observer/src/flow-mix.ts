import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CiliumEventTypeSchema,
  DNSSchema,
  EndpointSchema,
  type Flow,
  FlowBatchSchema,
  FlowSchema,
  FlowType,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  HTTPSchema,
  ICMPv4Schema,
  IPSchema,
  IPVersion,
  Layer4Schema,
  Layer7Schema,
  TCPSchema,
  TraceObservationPoint,
  TrafficDirection,
  UDPSchema,
  Verdict,
} from "@periscope/proto";

/** Shape of a {@link FlowMix}: how many namespaces, pods per namespace and nodes. */
export interface FlowMixOptions {
  readonly namespaces?: number;
  readonly podsPerNamespace?: number;
  readonly nodes?: number;
  /** Seed of the deterministic choice of endpoints and protocols. */
  readonly seed?: number;
}

/** The pod that {@link FlowMix} puts at `(ns, pod)`: its namespace, name and IPv4. */
export function mixPod(
  ns: number,
  pod: number,
): { namespace: string; podName: string; ip: string } {
  return {
    namespace: `ns-${ns}`,
    podName: `app-${pod % 7}-${ns}-${pod}`,
    ip: `10.${ns & 255}.${pod >> 8}.${(pod & 255) + 1}`,
  };
}

/**
 * Deterministic, realistic flows: many pods in many namespaces, TCP (55 %), UDP (15 %),
 * DNS (12 %), HTTP (12 %), ICMP (6 %); mostly forwarded, some dropped or audited; a few
 * flows to the world (no endpoint); endpoint labels, workloads, node names, summaries,
 * so each one is about as large as the enricher's.
 */
export class FlowMix {
  readonly namespaces: number;
  readonly podsPerNamespace: number;
  readonly nodes: number;
  #state: number;
  #pool: Uint8Array[] | undefined;

  constructor(opts: FlowMixOptions = {}) {
    this.namespaces = opts.namespaces ?? 50;
    this.podsPerNamespace = opts.podsPerNamespace ?? 40;
    this.nodes = opts.nodes ?? 3;
    this.#state = (opts.seed ?? 1) >>> 0 || 1;
  }

  /** Uniform integer in [0, n). */
  #rand(n: number): number {
    // xorshift32
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state % n;
  }

  #endpoint(world: boolean) {
    if (world) {
      return {
        ep: create(EndpointSchema, { identity: 2, labels: ["reserved:world"] }),
        ip: `93.184.${this.#rand(256)}.${this.#rand(256)}`,
      };
    }
    const ns = this.#rand(this.namespaces);
    const pod = this.#rand(this.podsPerNamespace);
    const p = mixPod(ns, pod);
    const app = `app-${pod % 7}`;
    return {
      ep: create(EndpointSchema, {
        ID: 1000 + pod,
        identity: 20000 + ns * 100 + (pod % 7),
        namespace: p.namespace,
        podName: p.podName,
        labels: [
          `k8s:app=${app}`,
          `k8s:io.kubernetes.pod.namespace=${p.namespace}`,
          "k8s:tier=web",
        ],
        workloads: [{ name: app, kind: "Deployment" }],
      }),
      ip: p.ip,
    };
  }

  /** One flow at `timeMs`. */
  flow(timeMs: number): Flow {
    const src = this.#endpoint(this.#rand(50) === 0);
    const dst = this.#endpoint(this.#rand(20) === 0);
    const roll = this.#rand(100);
    const sport = 32768 + this.#rand(28000);
    const node = `node-${this.#rand(this.nodes)}`;
    const v = this.#rand(100);
    const verdict = v < 90 ? Verdict.FORWARDED : v < 98 ? Verdict.DROPPED : Verdict.AUDIT;
    const time = timestampFromMs(timeMs);
    const base = {
      time,
      verdict,
      nodeName: node,
      Type: FlowType.L3_L4,
      IP: create(IPSchema, { source: src.ip, destination: dst.ip, ipVersion: IPVersion.IPv4 }),
      source: src.ep,
      destination: dst.ep,
      eventType: create(CiliumEventTypeSchema, { type: verdict === Verdict.DROPPED ? 1 : 4 }),
      traceObservationPoint: TraceObservationPoint.TO_ENDPOINT,
      trafficDirection: TrafficDirection.EGRESS,
      isReply: this.#rand(2) === 0,
    };
    if (roll < 55) {
      const dport = [443, 8080, 5432, 6379][this.#rand(4)] ?? 443;
      return create(FlowSchema, {
        ...base,
        l4: create(Layer4Schema, {
          protocol: {
            case: "TCP",
            value: create(TCPSchema, {
              sourcePort: sport,
              destinationPort: dport,
              flags: { ACK: true, PSH: this.#rand(2) === 0 },
            }),
          },
        }),
        Summary: `TCP Flags: ACK`,
      });
    }
    if (roll < 70) {
      return create(FlowSchema, {
        ...base,
        l4: udp(sport, [4789, 123, 8125][this.#rand(3)] ?? 123),
        Summary: "UDP",
      });
    }
    if (roll < 82) {
      const name = `svc-${this.#rand(200)}.ns-${this.#rand(this.namespaces)}.svc.cluster.local.`;
      return create(FlowSchema, {
        ...base,
        Type: FlowType.L7,
        eventType: create(CiliumEventTypeSchema, { type: 129 }),
        l4: udp(sport, 53),
        l7: create(Layer7Schema, {
          type: 1,
          record: { case: "dns", value: create(DNSSchema, { query: name, qtypes: ["A"] }) },
        }),
        Summary: `DNS Query ${name} A`,
      });
    }
    if (roll < 94) {
      const path = `/api/v1/items/${this.#rand(5000)}`;
      return create(FlowSchema, {
        ...base,
        Type: FlowType.L7,
        eventType: create(CiliumEventTypeSchema, { type: 129 }),
        l4: create(Layer4Schema, {
          protocol: {
            case: "TCP",
            value: create(TCPSchema, { sourcePort: sport, destinationPort: 80 }),
          },
        }),
        l7: create(Layer7Schema, {
          type: 2,
          latencyNs: BigInt(1000 + this.#rand(1_000_000)),
          record: {
            case: "http",
            value: create(HTTPSchema, {
              code: [200, 200, 200, 404, 503][this.#rand(5)] ?? 200,
              method: this.#rand(4) === 0 ? "POST" : "GET",
              url: `http://svc${path}`,
              protocol: "HTTP/1.1",
            }),
          },
        }),
        Summary: `HTTP/1.1 GET http://svc${path}`,
      });
    }
    return create(FlowSchema, {
      ...base,
      l4: create(Layer4Schema, {
        protocol: { case: "ICMPv4", value: create(ICMPv4Schema, { type: 8 }) },
      }),
      Summary: "ICMPv4 EchoRequest",
    });
  }

  /** One flow as a GetFlowsResponse, as the enricher publishes it. */
  response(timeMs: number): GetFlowsResponse {
    const flow = this.flow(timeMs);
    return create(GetFlowsResponseSchema, {
      nodeName: flow.nodeName,
      time: flow.time,
      responseTypes: { case: "flow", value: flow },
    });
  }

  /**
   * An encoded FlowBatch like {@link batch}, built fast from a pool of `poolSize` flows
   * encoded once: each event is a pooled flow followed by its own GetFlowsResponse.time
   * (the flow itself carries no time). For filling large rings.
   */
  pooledBatch(count: number, startMs: number, poolSize = 20_000): Uint8Array {
    if (this.#pool === undefined) {
      this.#pool = [];
      for (let i = 0; i < poolSize; i++) {
        const resp = this.response(0);
        resp.time = undefined;
        const flow = resp.responseTypes.case === "flow" ? resp.responseTypes.value : undefined;
        if (flow) flow.time = undefined;
        this.#pool.push(toBinary(GetFlowsResponseSchema, resp));
      }
    }
    const bodies: Uint8Array[] = [];
    const times: number[][] = [];
    let size = 0;
    for (let i = 0; i < count; i++) {
      const body = this.#pool[this.#rand(this.#pool.length)] ?? new Uint8Array();
      const ms = startMs + i;
      const ts: number[] = [0x08];
      varint(ts, Math.floor(ms / 1000));
      ts.push(0x10);
      varint(ts, (ms % 1000) * 1_000_000);
      // GetFlowsResponse.time is field 1001, length-delimited: tag 8010.
      const time: number[] = [];
      varint(time, 8010);
      varint(time, ts.length);
      time.push(...ts);
      const head: number[] = [0x0a];
      varint(head, body.length + time.length);
      bodies.push(body);
      times.push(head, time);
      size += head.length + body.length + time.length;
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const head = times[2 * i] ?? [];
      const time = times[2 * i + 1] ?? [];
      const body = bodies[i] ?? new Uint8Array();
      out.set(head, at);
      at += head.length;
      out.set(body, at);
      at += body.length;
      out.set(time, at);
      at += time.length;
    }
    return out;
  }

  /** An encoded FlowBatch of `count` flows, times from `startMs` on, `stepMs` apart. */
  batch(count: number, startMs: number, stepMs = 1): Uint8Array {
    const responses: GetFlowsResponse[] = [];
    for (let i = 0; i < count; i++) responses.push(this.response(startMs + i * stepMs));
    return toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses }));
  }
}

function varint(out: number[], v: number): void {
  let n = v;
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function udp(sport: number, dport: number) {
  return create(Layer4Schema, {
    protocol: {
      case: "UDP",
      value: create(UDPSchema, { sourcePort: sport, destinationPort: dport }),
    },
  });
}
