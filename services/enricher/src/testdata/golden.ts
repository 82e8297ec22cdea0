/**
 * A fixed raw frame holding one record of every shape the decoder handles (and a bad
 * one), and the deps to process it with; frames.golden.test.ts compares what comes
 * out with frames.golden.json. After an intended change to the output, rewrite the
 * fixture with `bun services/enricher/src/testdata/golden.ts` and review its diff.
 */
import { toJson } from "@bufbuild/protobuf";
import type { EndpointInfo } from "@periscope/model";
import { FlowBatchSchema } from "@periscope/proto";
import { ethernet, icmp, ipv4, ipv6, sctp, tcp, udp } from "@periscope/testing";
import {
  encodeRawFrame,
  encodeTraceRecord,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_REASON,
  TRACE_VERSION,
} from "@periscope/wire";
import { type FrameDeps, processFrame } from "../frames.ts";

/** Where the expected output is checked in. */
export const GOLDEN_PATH = `${import.meta.dir}/frames.golden.json`;

const A4 = "10.200.0.2";
const B4 = "10.200.0.3";
const A6 = "fd00:200::2";
const WORLD6 = "2001:db8::10";

const v4 = (src: string, dst: string, proto: number, l4: Uint8Array, vlans?: number[]) =>
  ethernet(
    { src: "0a:00:00:00:00:0a", dst: "0b:00:00:00:00:0b", etherType: 0x0800, vlans },
    ipv4({ src, dst, protocol: proto }, l4),
  );
const v6 = (src: string, dst: string, proto: number, l4: Uint8Array, ext = false) =>
  ethernet(
    { etherType: 0x86dd },
    ipv6({ src, dst, nextHeader: proto, extensions: ext ? [{ type: 0 }, { type: 60 }] : [] }, l4),
  );
const arpRequest = ethernet(
  { etherType: 0x0806 },
  new Uint8Array([
    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 200, 0, 2, 0, 0, 0, 0, 0, 0, 10, 200, 0, 3,
  ]),
);

/** One of every shape the decoder handles, including a truncated capture and a bad record. */
export const PACKETS: readonly {
  data: Uint8Array;
  ifindex: number;
  ingress: boolean;
  /** What the kernel's connection table would say (TRACE_REASON). */
  reason: number;
}[] = [
  {
    data: v4(A4, B4, 6, tcp(40000, 8080, ["SYN"])),
    ifindex: 7,
    ingress: false,
    reason: TRACE_REASON.NEW,
  },
  {
    data: v4(B4, A4, 6, tcp(8080, 40000, ["SYN", "ACK"])),
    ifindex: 7,
    ingress: true,
    reason: TRACE_REASON.REPLY,
  },
  {
    data: v4(A4, B4, 6, tcp(40000, 8080, ["PSH", "ACK", "NS"])),
    ifindex: 7,
    ingress: false,
    reason: TRACE_REASON.ESTABLISHED,
  },
  {
    data: v4(A4, "192.0.2.9", 17, udp(5353, 53), [42]),
    ifindex: 9,
    ingress: false,
    reason: TRACE_REASON.NEW,
  },
  { data: v4(A4, B4, 132, sctp(1000, 2000)), ifindex: 0, ingress: false, reason: TRACE_REASON.NEW },
  { data: v4(A4, B4, 1, icmp(8, 0)), ifindex: 7, ingress: false, reason: TRACE_REASON.NEW },
  { data: v4(B4, A4, 1, icmp(3, 3)), ifindex: 7, ingress: true, reason: TRACE_REASON.RELATED },
  {
    data: v6(A6, WORLD6, 6, tcp(41000, 443, ["SYN"]), true),
    ifindex: 8,
    ingress: false,
    reason: TRACE_REASON.NEW,
  },
  { data: v6(WORLD6, A6, 58, icmp(129, 0)), ifindex: 8, ingress: true, reason: TRACE_REASON.REPLY },
  {
    data: v6("::ffff:10.0.0.1", "::1", 17, udp(1, 2)),
    ifindex: 8,
    ingress: true,
    reason: TRACE_REASON.NEW,
  },
  { data: arpRequest, ifindex: 7, ingress: true, reason: TRACE_REASON.UNKNOWN },
  {
    data: v4(A4, B4, 6, tcp(40000, 8080, ["ACK"])).subarray(0, 40),
    ifindex: 7,
    ingress: false,
    reason: TRACE_REASON.ESTABLISHED,
  },
  { data: new Uint8Array(6), ifindex: 7, ingress: false, reason: TRACE_REASON.UNKNOWN },
];

const ENDPOINTS: Record<string, EndpointInfo> = {
  [A4]: { namespace: "demo", podName: "a", labels: ["k8s:tier=web", "k8s:app=a"], id: 3 },
  [B4]: { namespace: "demo", podName: "b", labels: ["k8s:app=b"], identity: 4242 },
  [A6]: { namespace: "other", podName: "a6", labels: [], nodeName: "n2" },
};

export function goldenFrame(): Uint8Array {
  const records = PACKETS.map((p, i) =>
    encodeTraceRecord({
      type: RECORD_TYPE_TRACE,
      obsPoint: p.ingress ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
      version: TRACE_VERSION,
      flags: 0,
      cpu: i % 2,
      origLen: p.data.length,
      // one record out of kernel time order, to pin the sort
      tsBootNs: 5_000_000_000n + BigInt(i === 3 ? 1 : i * 1_000_123),
      ifindex: p.ifindex,
      mark: 0,
      flowHash: i + 1,
      l3Proto: 0,
      pktType: 0,
      netnsCookie: 77n,
      traceReason: p.reason,
      data: p.data,
    }),
  );
  return encodeRawFrame({
    nodeName: "golden-node",
    seq: 1n,
    bootId: "boot",
    partition: 0,
    bootToRealtimeNs: 1_732_243_800_123_456_789n,
    sealedUnixNs: 1_732_243_900_000_000_000n,
    kernelLost: 3n,
    records,
  });
}

export function goldenDeps(): FrameDeps {
  let n = 0;
  return {
    endpoint: (ip) => ENDPOINTS[ip],
    interfaceName: (node, cookie, ifindex) =>
      ifindex === 7 ? `${node}-${cookie}-eth${ifindex}` : undefined,
    uuid: () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`,
  };
}

/**
 * The FlowBatches of the golden frame processed twice through the same deps (the
 * second shows endpoint caches carried over), as pretty proto JSON.
 */
export function goldenJson(): string {
  const deps = goldenDeps();
  const batches = [processFrame(goldenFrame(), deps), processFrame(goldenFrame(), deps)].map((r) =>
    toJson(FlowBatchSchema, r.batch),
  );
  return `${JSON.stringify(batches, null, 2)}\n`;
}

if (import.meta.main) {
  await Bun.write(GOLDEN_PATH, goldenJson());
  console.log(`wrote ${GOLDEN_PATH}`);
}
