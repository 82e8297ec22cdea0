/**
 * The enricher's fast frame path: a RawFrame's trace records are written straight
 * into FlowBatch bytes (field by field, with per-frame and per-endpoint pieces
 * written once), without building flow.Flow messages. The bytes equal
 * `toBinary(FlowBatchSchema, processFrame(...).batch)` (with the same uuids), so
 * processFrame stays the reference. Records the fast writer does not cover (drop and
 * policy verdict records, packets the L7 tracker parses, anything unusual) go
 * through the reference decoders and the compiled encoder, inside the same bytes;
 * frames with debug records go through processFrame whole.
 */

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  decodePacket,
  decodeTraceFlow,
  icmpV4TypeCodeText,
  icmpV6TypeCodeText,
  observationPoint,
  type PayloadSink,
  packetSummary,
  trafficDirection,
} from "@periscope/flow";
import type { EndpointInfo } from "@periscope/model";
import {
  compileEncoder,
  type Flow,
  FlowBatchSchema,
  type FrameSource,
  FrameSourceSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  type RawFrame,
} from "@periscope/proto";
import {
  beginLength,
  compileFieldEncoder,
  copyOut,
  endLength,
  moveRanges,
  rewind,
  streamBegin,
  streamTake,
  writeMacString,
  writeRaw,
  writerPosition,
  writeString,
  writeVarint32,
} from "@periscope/proto/encoder-stream.ts";
import {
  decodeRecordType,
  decodeTraceRecord,
  FLAG_L3,
  MalformedRecordError,
  RECORD_TYPE_DEBUG,
  RECORD_TYPE_SOCK_OWNER,
  RECORD_TYPE_TRACE,
  rawFrameRecords,
  TRACE_REASON,
  type TraceRecord,
} from "@periscope/wire";
import {
  decodeRecordFlow,
  type FrameDeps,
  type FrameResult,
  type FrameScope,
  failedRecordsResponse,
  flowResponse,
  frameLostResponses,
  noteOwners,
  openFrame,
  processFrame,
  type RecordFailure,
} from "./frames.ts";
import {
  type FastTrace,
  L4_ICMPV4,
  L4_ICMPV6,
  L4_NONE,
  L4_SCTP,
  L4_TCP,
  L4_UDP,
  netnsCookieOf,
  newFastTrace,
  readFastTrace,
} from "./frames-fast-packet.ts";
import { labelIdentity } from "./identity.ts";
import type { L7Packet } from "./l7/tracker.ts";
import { attachProcess } from "./process/flow-join.ts";

/** What the fast path produced for one frame; the batch exists only as bytes. */
export interface EncodedFrame {
  readonly frame: RawFrame;
  /**
   * The FlowBatch: the bytes `compileEncoder(FlowBatchSchema)` gives for the batch
   * processFrame makes, with `source` set to what the caller's `source` returned.
   */
  readonly bytes: Uint8Array;
  /** Flows in the batch, L7 flows included. */
  readonly flows: number;
  /** L7 flows among them. */
  readonly l7Flows: number;
  /** Debug records decoded into the batch's debug events. */
  readonly debugEvents: number;
  readonly failures: ReadonlyMap<RecordFailure, number>;
  /** First failure message per kind, for logs. */
  readonly failureSamples: ReadonlyMap<RecordFailure, string>;
}

/** FlowBatch.source of a frame's batch (none when it returns undefined). */
export type SourceOf = (frame: RawFrame) => FrameSource | undefined;

const encodeBatch = compileEncoder(FlowBatchSchema);
const writeResponse = compileFieldEncoder(1, GetFlowsResponseSchema);
const writeSource = compileFieldEncoder(2, FrameSourceSchema);

// Wire tags (field number << 3 | wire type) of what the fast writer writes.
const LEN = 2;
const tag = (no: number, wire: number): number => ((no << 3) | wire) >>> 0;
const T_BATCH_RESPONSE = tag(1, LEN);
const T_RESP_FLOW = tag(1, LEN);
const T_RESP_NODE = tag(1000, LEN);
const T_RESP_TIME = tag(1001, LEN);
const T_TS_SECONDS = tag(1, 0);
const T_TS_NANOS = tag(2, 0);
const T_FLOW_TIME = tag(1, LEN);
const T_FLOW_VERDICT = tag(2, 0);
const T_FLOW_ETHERNET = tag(4, LEN);
const T_FLOW_IP = tag(5, LEN);
const T_FLOW_L4 = tag(6, LEN);
const T_FLOW_SOURCE = tag(8, LEN);
const T_FLOW_DESTINATION = tag(9, LEN);
const T_FLOW_TYPE = tag(10, 0);
const T_FLOW_NODE = tag(11, LEN);
const T_FLOW_SOURCE_NAMES = tag(13, LEN);
const T_FLOW_DESTINATION_NAMES = tag(14, LEN);
const T_FLOW_REPLY = tag(16, 0);
const T_FLOW_EVENT_TYPE = tag(19, LEN);
const T_FLOW_DIRECTION = tag(22, 0);
const T_FLOW_OBS_POINT = tag(24, 0);
const T_FLOW_IS_REPLY = tag(26, LEN);
const T_FLOW_INTERFACE = tag(28, LEN);
const T_FLOW_UUID = tag(34, LEN);
const T_FLOW_TRACE_REASON = tag(36, 0);
const T_FLOW_SUMMARY = tag(100000, LEN);
/** Flow.extensions (google.protobuf.Any): the socket's process. */
const T_FLOW_EXTENSIONS = tag(150000, LEN);
const T_STR1 = tag(1, LEN);
const T_STR2 = tag(2, LEN);
const T_VARINT1 = tag(1, 0);
const T_VARINT2 = tag(2, 0);
const T_VARINT3 = tag(3, 0);
const T_MSG3 = tag(3, LEN);
const T_ENDPOINT_LABEL = tag(4, LEN);
const T_ENDPOINT_POD = tag(5, LEN);
/** Layer4 oneof tags by L4 kind (L4_TCP.. L4_SCTP): TCP 1, UDP 2, ICMPv4 3, ICMPv6 4, SCTP 5. */
const L4_CASE_TAGS = [0, tag(1, LEN), tag(2, LEN), tag(3, LEN), tag(4, LEN), tag(5, LEN)];

/** Tag, length and UTF-8 bytes of a string field, for writing as is. */
function stringField(t: number, s: string): Uint8Array {
  const text = new TextEncoder().encode(s);
  const head: number[] = [];
  for (let v = t; ; v >>>= 7) {
    if (v < 0x80) {
      head.push(v);
      break;
    }
    head.push((v & 0x7f) | 0x80);
  }
  for (let v = text.length; ; v >>>= 7) {
    if (v < 0x80) {
      head.push(v);
      break;
    }
    head.push((v & 0x7f) | 0x80);
  }
  const out = new Uint8Array(head.length + text.length);
  out.set(head);
  out.set(text, head.length);
  return out;
}
/** flow.Verdict FORWARDED, flow.FlowType L3_L4, IPVersion IPv4 / IPv6, CiliumEventType trace. */
const FORWARDED = 1;
const L3_L4 = 1;
const MESSAGE_TYPE_TRACE = 4;

/** Endpoint message bytes (body) per registry labels list, reused while the record is unchanged. */
interface EndpointBytes {
  readonly info: EndpointInfo;
  readonly identity: number;
  readonly body: Uint8Array;
}
const endpointBodies = new WeakMap<readonly string[], EndpointBytes>();

function sameInfo(a: EndpointInfo, b: EndpointInfo): boolean {
  return (
    a.namespace === b.namespace &&
    a.podName === b.podName &&
    a.id === b.id &&
    a.identity === b.identity
  );
}

/** Writes an Endpoint body (ID, identity, namespace, sorted labels, pod) into the stream. */
function writeEndpointBody(info: EndpointInfo, identity: number): void {
  const id = info.id ?? 0;
  if (id !== 0) {
    writeVarint32(T_VARINT1);
    writeVarint32(id);
  }
  if (identity !== 0) {
    writeVarint32(T_VARINT2);
    writeVarint32(identity);
  }
  if (info.namespace !== "") {
    writeVarint32(T_MSG3);
    writeString(info.namespace);
  }
  for (const label of [...info.labels].sort()) {
    writeVarint32(T_ENDPOINT_LABEL);
    writeString(label);
  }
  if (info.podName !== "") {
    writeVarint32(T_ENDPOINT_POD);
    writeString(info.podName);
  }
}

/** "SYN, ACK" summaries per flag set (the 9 TCP flag bits). */
const tcpSummaries = new Map<number, string>();

/** Per-frame state of the fast writer. */
class FrameWriter {
  /** Endpoint body bytes per address for this frame (null: no endpoint). */
  private readonly endpoints = new Map<string, Uint8Array | null>();
  private readonly node: string;
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly seconds: number[] = [];
  readonly nanos: number[] = [];
  private readonly sink: PayloadSink = {};
  private readonly trace = newFacts();
  /** Seconds and remaining ns of the frame's boot-to-realtime offset. */
  private readonly secBase: number;
  private readonly nsBase: number;
  /** flow.node_name and GetFlowsResponse.node_name, written as is. */
  private readonly nodeField: Uint8Array;
  private readonly respNodeField: Uint8Array;

  constructor(
    private readonly scope: FrameScope,
    private readonly deps: FrameDeps,
  ) {
    this.node = scope.node;
    const off = scope.ctx.bootToRealtimeNs;
    const sec = off / 1_000_000_000n;
    this.secBase = Number(sec);
    this.nsBase = Number(off - sec * 1_000_000_000n);
    this.nodeField = this.node === "" ? new Uint8Array(0) : stringField(T_FLOW_NODE, this.node);
    this.respNodeField = stringField(T_RESP_NODE, this.node);
  }

  /** Endpoint body for an address, looked up and written once per frame. */
  private endpointBody(ip: string): Uint8Array | null {
    let body = this.endpoints.get(ip);
    if (body !== undefined) return body;
    const info = this.deps.endpoint(ip);
    if (info === undefined) {
      body = null;
    } else {
      const known = endpointBodies.get(info.labels);
      if (known !== undefined && sameInfo(known.info, info)) {
        body = known.body;
      } else {
        const identity = info.identity ?? labelIdentity(info.namespace, info.labels);
        const start = writerPosition();
        writeEndpointBody(info, identity);
        body = copyOut(start, writerPosition());
        rewind(start);
        endpointBodies.set(info.labels, { info, identity, body });
      }
    }
    this.endpoints.set(ip, body);
    return body;
  }

  private writeEndpoint(t: number, ip: string | undefined): void {
    writeVarint32(t);
    const body = ip === undefined ? null : this.endpointBody(ip);
    if (body === null) {
      writeVarint32(0);
      return;
    }
    writeVarint32(body.length);
    writeRaw(body);
  }

  /** Remembers the response just written (for the time sort). */
  private note(start: number, seconds: number, nanos: number): void {
    this.starts.push(start);
    this.ends.push(writerPosition());
    this.seconds.push(seconds);
    this.nanos.push(nanos);
  }

  /** Forgets the responses noted after the first `n` (their bytes were rewound). */
  forget(n: number): void {
    for (const list of [this.starts, this.ends, this.seconds, this.nanos]) list.length = n;
  }

  /** Writes a GetFlowsResponse message made by the reference path. */
  writeMessage(r: GetFlowsResponse): void {
    const start = writerPosition();
    writeResponse(r);
    const t: Timestamp | undefined = r.time;
    this.note(start, Number(t?.seconds ?? 0n), t?.nanos ?? 0);
  }

  /**
   * Writes the flow of a trace record and the L7 flows the tracker reads from it;
   * returns how many L7 flows that was.
   * @throws like decodeTraceRecord and decodeTraceFlow.
   */
  writeTrace(bytes: Uint8Array): number {
    const t = this.trace;
    let rec: TraceRecord | undefined;
    let summary: string;
    if (readFastTrace(bytes, t)) {
      t.mac = t.data;
      t.macSrc = undefined;
      t.macDst = undefined;
      summary = "";
    } else {
      rec = decodeTraceRecord(bytes);
      summary = fromDecoded(rec, t, this.sink);
    }
    const ctx = this.scope.ctx;
    const l7 = this.deps.l7;
    // time: boot time + the frame's boot-to-realtime offset, split without bigints when exact
    let seconds: number;
    let nanos: number;
    if (t.tsHi < 0x100000) {
      const n = this.nsBase + (t.tsHi * 0x100000000 + t.tsLo);
      const carry = Math.floor(n / 1e9);
      seconds = this.secBase + carry;
      nanos = n - carry * 1e9;
    } else {
      const ns = tsBootNs(t) + ctx.bootToRealtimeNs;
      const sec = ns / 1_000_000_000n;
      seconds = Number(sec);
      nanos = Number(ns - sec * 1_000_000_000n);
    }
    const uuid = ctx.uuid ? ctx.uuid() : crypto.randomUUID();

    const start = writerPosition();
    writeVarint32(T_BATCH_RESPONSE);
    const respLen = beginLength(2);
    writeVarint32(T_RESP_FLOW);
    const flowLen = beginLength(2);
    writeVarint32(T_FLOW_TIME);
    writeTimestamp(seconds, nanos);
    writeVarint32(T_FLOW_VERDICT);
    writeVarint32(FORWARDED);
    if (t.macSrc !== undefined) {
      writeVarint32(T_FLOW_ETHERNET);
      const l = beginLength(1);
      writeVarint32(T_STR1);
      writeString(t.macSrc);
      writeVarint32(T_STR2);
      writeString(t.macDst ?? "");
      endLength(l, 1);
    } else if (t.mac >= 0) {
      // 2 fields of 17 ASCII characters: source (bytes 6..11), destination (0..5)
      writeVarint32(T_FLOW_ETHERNET);
      writeVarint32(38);
      writeVarint32(T_STR1);
      writeMacString(t.bytes, t.mac + 6);
      writeVarint32(T_STR2);
      writeMacString(t.bytes, t.mac);
    }
    const hasIp = t.ipVersion !== 0;
    if (hasIp) {
      writeVarint32(T_FLOW_IP);
      const l = beginLength(1);
      if (t.src !== "") {
        writeVarint32(T_STR1);
        writeString(t.src);
      }
      if (t.dst !== "") {
        writeVarint32(T_STR2);
        writeString(t.dst);
      }
      writeVarint32(T_VARINT3);
      writeVarint32(t.ipVersion === 4 ? 1 : 2);
      endLength(l, 1);
    }
    const kind = t.l4;
    if (kind !== L4_NONE) {
      writeVarint32(T_FLOW_L4);
      const l = beginLength(1);
      writeVarint32(L4_CASE_TAGS[kind] ?? 0);
      const m = beginLength(1);
      if (kind === L4_ICMPV4 || kind === L4_ICMPV6) {
        writeUint32Field(T_VARINT1, t.icmpType);
        writeUint32Field(T_VARINT2, t.icmpCode);
      } else {
        writeUint32Field(T_VARINT1, t.sport);
        writeUint32Field(T_VARINT2, t.dport);
        if (kind === L4_TCP) {
          writeVarint32(T_MSG3);
          writeTcpFlags(t.tcpFlags);
        }
      }
      endLength(m, 1);
      endLength(l, 1);
    }
    this.writeEndpoint(T_FLOW_SOURCE, hasIp ? t.src : undefined);
    this.writeEndpoint(T_FLOW_DESTINATION, hasIp ? t.dst : undefined);
    writeVarint32(T_FLOW_TYPE);
    writeVarint32(L3_L4);
    if (this.nodeField.length > 0) writeRaw(this.nodeField);
    let srcNames: string[] | undefined;
    let dstNames: string[] | undefined;
    if (l7 !== undefined && hasIp && l7.names.size > 0) {
      const nowMs = this.scope.nowMs;
      srcNames = t.src ? l7.names.names(t.src, nowMs) : undefined;
      dstNames = t.dst ? l7.names.names(t.dst, nowMs) : undefined;
      if (srcNames !== undefined) writeStrings(T_FLOW_SOURCE_NAMES, srcNames);
      if (dstNames !== undefined) writeStrings(T_FLOW_DESTINATION_NAMES, dstNames);
    }
    const reason = t.traceReason;
    const known = reason <= TRACE_REASON.REOPENED;
    const isReply = known && reason === TRACE_REASON.REPLY;
    if (isReply) {
      writeVarint32(T_FLOW_REPLY);
      writeVarint32(1);
    }
    writeVarint32(T_FLOW_EVENT_TYPE);
    if (t.obsPoint === 0) {
      writeVarint32(2);
      writeVarint32(T_VARINT1);
      writeVarint32(MESSAGE_TYPE_TRACE);
    } else {
      const l = beginLength(1);
      writeVarint32(T_VARINT1);
      writeVarint32(MESSAGE_TYPE_TRACE);
      writeVarint32(T_VARINT2);
      writeVarint32(t.obsPoint);
      endLength(l, 1);
    }
    const direction = trafficDirection(t.obsPoint);
    if (direction !== 0) {
      writeVarint32(T_FLOW_DIRECTION);
      writeVarint32(direction);
    }
    const point = observationPoint(t.obsPoint);
    if (point !== 0) {
      writeVarint32(T_FLOW_OBS_POINT);
      writeVarint32(point);
    }
    if (known) {
      // google.protobuf.BoolValue: an empty message for false
      writeVarint32(T_FLOW_IS_REPLY);
      if (isReply) {
        writeVarint32(2);
        writeVarint32(T_VARINT1);
        writeVarint32(1);
      } else {
        writeVarint32(0);
      }
    }
    if (t.ifindex !== 0) {
      writeVarint32(T_FLOW_INTERFACE);
      const l = beginLength(1);
      writeVarint32(T_VARINT1);
      writeVarint32(t.ifindex);
      const name = ctx.ifName ? this.scope.interfaceName(t.netnsCookie(), t.ifindex) : "";
      if (name !== "") {
        writeVarint32(T_STR2);
        writeString(name);
      }
      endLength(l, 1);
    }
    if (uuid !== "") {
      writeVarint32(T_FLOW_UUID);
      writeString(uuid);
    }
    if (known) {
      writeVarint32(T_FLOW_TRACE_REASON);
      writeVarint32(reason + 1);
    }
    if (rec === undefined) summary = fastSummary(t);
    if (summary !== "") {
      writeVarint32(T_FLOW_SUMMARY);
      writeString(summary);
    }
    const procs = this.deps.processes;
    if (procs !== undefined && hasIp && (kind === L4_TCP || kind === L4_UDP)) {
      const proto = kind === L4_TCP ? 6 : 17;
      const ext = procs.anyBytes(t.netnsCookie(), proto, t.src, t.sport, t.dst, t.dport);
      if (ext !== undefined) {
        writeVarint32(T_FLOW_EXTENSIONS);
        writeVarint32(ext.length);
        writeRaw(ext);
      }
    }
    endLength(flowLen, 2);
    writeRaw(this.respNodeField);
    writeVarint32(T_RESP_TIME);
    writeTimestamp(seconds, nanos);
    endLength(respLen, 2);
    this.note(start, seconds, nanos);
    if (
      l7 === undefined ||
      t.payloadStart < 0 ||
      !hasIp ||
      (kind !== L4_TCP && kind !== L4_UDP) ||
      !l7.parses(kind === L4_TCP, t.sport, t.dport)
    ) {
      return 0;
    }
    const tcp = kind === L4_TCP;
    const view: L7Packet = {
      src: t.src,
      dst: t.dst,
      sport: t.sport,
      dport: t.dport,
      tcp,
      syn: tcp && (t.tcpFlags & 0x02) !== 0,
      rst: tcp && (t.tcpFlags & 0x04) !== 0,
      timeNs: BigInt(seconds) * 1_000_000_000n + BigInt(nanos),
    };
    const decoded = rec;
    // The packet's flow as the reference path builds it, only for packets that make L7 flows.
    const base = (): Flow => {
      const flow = decodeTraceFlow(decoded ?? decodeTraceRecord(bytes), {
        ...ctx,
        uuid: () => uuid,
      });
      if (srcNames !== undefined) flow.sourceNames = srcNames;
      if (dstNames !== undefined) flow.destinationNames = dstNames;
      return flow;
    };
    const payload = {
      offset: t.payloadStart - t.data,
      end: t.payloadEnd - t.data,
      ...(tcp ? { seq: t.tcpSeq } : {}),
    };
    const data = t.bytes.subarray(t.data, t.data + t.capLen);
    const made = l7.observePacket(view, base, data, payload, t.origLen, this.scope.nowMs);
    for (const f of made) {
      if (procs !== undefined) attachProcess(procs, f, bytes);
      this.writeMessage(flowResponse(this.node, f));
    }
    return made.length;
  }
}

/** Ethernet / IP / L4 facts of a trace record, from either reader. */
interface TraceFacts extends FastTrace {
  /** MAC strings when read by the reference decoder. */
  macSrc: string | undefined;
  macDst: string | undefined;
  /** Offset of the Ethernet header in `bytes` (fast reader), -1 when none. */
  mac: number;
  tsHi: number;
  tsLo: number;
  netnsCookie(): bigint;
}

function newFacts(): TraceFacts {
  const t = newFastTrace() as TraceFacts;
  t.macSrc = undefined;
  t.macDst = undefined;
  t.mac = -1;
  t.netnsCookie = () => (t.cookie !== undefined ? t.cookie : netnsCookieOf(t));
  return t;
}

function tsBootNs(t: TraceFacts): bigint {
  return (BigInt(t.tsHi) << 32n) | BigInt(t.tsLo);
}

/** Fills `t` from the reference decoders (any record shape); returns the flow summary. */
function fromDecoded(rec: TraceRecord, t: TraceFacts, sink: PayloadSink): string {
  sink.payload = undefined;
  const packet = decodePacket(rec.data, rec.flags & FLAG_L3 ? "ip" : "ethernet", sink);
  t.bytes = rec.data;
  t.data = 0;
  t.capLen = rec.data.length;
  t.obsPoint = rec.obsPoint;
  t.origLen = rec.origLen;
  t.tsHi = Number(rec.tsBootNs >> 32n);
  t.tsLo = Number(rec.tsBootNs & 0xffffffffn);
  t.ifindex = rec.ifindex;
  t.cookie = rec.netnsCookie;
  t.traceReason = rec.traceReason;
  t.mac = -1;
  t.macSrc = packet.ethernet?.source;
  t.macDst = packet.ethernet?.destination;
  const ip = packet.ip;
  t.ipVersion = ip === undefined ? 0 : ip.version;
  t.src = ip?.source ?? "";
  t.dst = ip?.destination ?? "";
  t.l4 = L4_NONE;
  t.payloadStart = -1;
  const l4 = packet.l4;
  if (l4 !== undefined) {
    if (l4.kind === "icmpv4" || l4.kind === "icmpv6") {
      t.l4 = l4.kind === "icmpv4" ? L4_ICMPV4 : L4_ICMPV6;
      t.icmpType = l4.type;
      t.icmpCode = l4.code;
    } else {
      t.l4 = l4.kind === "tcp" ? L4_TCP : l4.kind === "udp" ? L4_UDP : L4_SCTP;
      t.sport = l4.sourcePort;
      t.dport = l4.destinationPort;
      if (l4.kind === "tcp") {
        const f = l4.flags;
        t.tcpFlags =
          (f.FIN ? 1 : 0) |
          (f.SYN ? 2 : 0) |
          (f.RST ? 4 : 0) |
          (f.PSH ? 8 : 0) |
          (f.ACK ? 16 : 0) |
          (f.URG ? 32 : 0) |
          (f.ECE ? 64 : 0) |
          (f.CWR ? 128 : 0) |
          (f.NS ? 256 : 0);
      }
    }
  }
  const payload = sink.payload as PayloadSink["payload"];
  if (payload !== undefined) {
    t.payloadStart = payload.offset;
    t.payloadEnd = payload.end;
    t.tcpSeq = payload.seq ?? 0;
  }
  return packetSummary(packet);
}

/** TCPFlags body (fields 1..9: FIN SYN RST PSH ACK URG ECE CWR NS, the set ones) with its length. */
function writeTcpFlags(bits: number): void {
  let n = 0;
  for (let i = 0; i < 9; i++) if (bits & (1 << i)) n++;
  writeVarint32(n * 2);
  for (let i = 0; i < 9; i++) {
    if (bits & (1 << i)) {
      writeVarint32((i + 1) << 3);
      writeVarint32(1);
    }
  }
}

/** Summary of a record read by the fast reader (TCP flags, UDP, ICMP type). */
function fastSummary(t: FastTrace): string {
  switch (t.l4) {
    case L4_TCP:
      return tcpSummary(t.tcpFlags);
    case L4_UDP:
      return "UDP";
    case L4_ICMPV4:
    case L4_ICMPV6: {
      const key = (t.l4 << 16) | (t.icmpType << 8) | t.icmpCode;
      let s = icmpSummaries.get(key);
      if (s === undefined) {
        s =
          t.l4 === L4_ICMPV4
            ? `ICMPv4 ${icmpV4TypeCodeText(t.icmpType, t.icmpCode)}`
            : `ICMPv6 ${icmpV6TypeCodeText(t.icmpType, t.icmpCode)}`;
        icmpSummaries.set(key, s);
      }
      return s;
    }
    default:
      return "";
  }
}

const icmpSummaries = new Map<number, string>();

function writeUint32Field(t: number, v: number): void {
  if (v === 0) return;
  writeVarint32(t);
  writeVarint32(v);
}

function writeStrings(t: number, list: readonly string[]): void {
  for (const s of list) {
    writeVarint32(t);
    writeString(s);
  }
}

/** Length-prefixed google.protobuf.Timestamp body. */
function writeTimestamp(seconds: number, nanos: number): void {
  const l = beginLength(1);
  if (seconds !== 0) {
    writeVarint32(T_TS_SECONDS);
    writeVarint32(seconds);
  }
  if (nanos !== 0) {
    writeVarint32(T_TS_NANOS);
    writeVarint32(nanos);
  }
  endLength(l, 1);
}

function tcpSummary(bits: number): string {
  let s = tcpSummaries.get(bits);
  if (s === undefined) {
    const f = {
      FIN: (bits & 1) !== 0,
      SYN: (bits & 2) !== 0,
      RST: (bits & 4) !== 0,
      PSH: (bits & 8) !== 0,
      ACK: (bits & 16) !== 0,
      URG: (bits & 32) !== 0,
      ECE: (bits & 64) !== 0,
      CWR: (bits & 128) !== 0,
      NS: (bits & 256) !== 0,
    };
    s = packetSummary({
      l4: { kind: "tcp", sourcePort: 0, destinationPort: 0, flags: f },
      truncated: false,
    });
    tcpSummaries.set(bits, s);
  }
  return s;
}

/** The EncodedFrame of a batch made by processFrame (frames with debug records). */
function fromReference(r: FrameResult, source: SourceOf | undefined): EncodedFrame {
  const src = source?.(r.frame);
  if (src !== undefined) r.batch.source = src;
  return {
    frame: r.frame,
    bytes: encodeBatch(r.batch),
    flows: r.flows,
    l7Flows: r.l7Flows,
    debugEvents: r.debugEvents,
    failures: r.failures,
    failureSamples: r.failureSamples,
  };
}

/** True if the frame holds a debug record (those take the reference path). */
function hasDebug(records: readonly Uint8Array[]): boolean {
  for (const r of records) if (r.byteLength > 0 && r[0] === RECORD_TYPE_DEBUG) return true;
  return false;
}

/**
 * Decodes one RawFrame like processFrame and returns its FlowBatch as bytes, with
 * the `source` given for the frame.
 * Throws MalformedFrameError (from @periscope/wire) when the frame itself is
 * unusable; failed records are counted and reported as processFrame does.
 */
export function encodeFrame(data: Uint8Array, deps: FrameDeps, source?: SourceOf): EncodedFrame {
  const scope = openFrame(data, deps);
  const { frame, fail, failures, samples } = scope;
  const split = rawFrameRecords(frame);
  if (hasDebug(split.records)) return fromReference(processFrame(data, deps), source);
  if (split.malformed > 0) {
    failures.set("malformed_record", split.malformed);
    samples.set("malformed_record", split.reason ?? "packed_records unreadable");
  }
  deps.l7?.sweepIfDue(scope.nowMs);

  streamBegin();
  for (const r of frameLostResponses(frame, scope.sealedMs)) writeResponse(r);
  const flowsStart = writerPosition();
  const w = new FrameWriter(scope, deps);
  let flows = 0;
  let l7Flows = 0;
  const l7Out: Flow[] = [];
  noteOwners(split.records, deps, fail);
  for (const bytes of split.records) {
    let type: number;
    try {
      type = decodeRecordType(bytes);
    } catch (err) {
      fail("malformed_record", err);
      continue;
    }
    if (type === RECORD_TYPE_SOCK_OWNER) continue;
    if (type === RECORD_TYPE_TRACE) {
      const mark = writerPosition();
      const noted = w.starts.length;
      try {
        const made = w.writeTrace(bytes);
        flows += 1 + made;
        l7Flows += made;
      } catch (err) {
        rewind(mark);
        w.forget(noted);
        fail(err instanceof MalformedRecordError ? "malformed_record" : "undecodable_packet", err);
      }
      continue;
    }
    let flow: Flow | undefined;
    l7Out.length = 0;
    try {
      flow = decodeRecordFlow(type, bytes, scope, deps, l7Out);
    } catch (err) {
      fail(err instanceof MalformedRecordError ? "malformed_record" : "undecodable_packet", err);
      continue;
    }
    if (flow === undefined) {
      fail("unknown_record_type", new Error(`record type ${type}`));
      continue;
    }
    w.writeMessage(flowResponse(scope.node, flow));
    flows++;
    for (const f of l7Out) {
      w.writeMessage(flowResponse(scope.node, f));
      flows++;
      l7Flows++;
    }
  }
  sortByTime(w, flowsStart);
  const failedLost = failedRecordsResponse(scope);
  if (failedLost !== undefined) writeResponse(failedLost);
  const src = source?.(frame);
  if (src !== undefined) writeSource(src);
  return {
    frame,
    bytes: streamTake(),
    flows,
    l7Flows,
    debugEvents: 0,
    failures,
    failureSamples: samples,
  };
}

/** Puts the flows written after `base` in time order (stable), when they are not already. */
function sortByTime(w: FrameWriter, base: number): void {
  const { seconds, nanos } = w;
  const n = seconds.length;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) {
    const ds = (seconds[i] as number) - (seconds[i - 1] as number);
    if (ds < 0 || (ds === 0 && (nanos[i] as number) < (nanos[i - 1] as number))) sorted = false;
  }
  if (sorted) return;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => {
    const ds = (seconds[a] as number) - (seconds[b] as number);
    return ds !== 0 ? ds : (nanos[a] as number) - (nanos[b] as number);
  });
  moveRanges(base, order, w.starts, w.ends);
}
