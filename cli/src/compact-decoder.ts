/**
 * A lazy GetFlowsResponse decoder for the text outputs that print one line per flow:
 * it reads only the Flow fields compact output (and the follow stream's resume point)
 * look at, straight from the bytes, and skips the rest (labels, workloads, interfaces,
 * trace context, ...). Small nested messages that compact reads whole (L4,
 * L7, services, policies, event type) go through the full decoder. Lost events and node
 * status changes are rare and decode fully.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema, type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  CiliumEventTypeSchema,
  EndpointSchema,
  EthernetSchema,
  type Flow,
  FlowSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  ICMPv4Schema,
  ICMPv6Schema,
  IPSchema,
  IPTraceIDSchema,
  type Layer4,
  Layer4Schema,
  Layer7Schema,
  PolicySchema,
  SCTPSchema,
  ServiceSchema,
  TCPSchema,
  UDPSchema,
} from "@periscope/proto";

const READ = { readUnknownFields: false } as const;
const utf8 = new TextDecoder();

/** A cursor over protobuf bytes. */
class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    pos: number,
    readonly end: number,
  ) {
    this.pos = pos;
  }

  /** A varint that fits 32 bits (or a negative int32's 64-bit form, truncated). */
  u32(): number {
    const b = this.buf;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const byte = b[this.pos++] as number;
      if (shift < 32) result |= (byte & 0x7f) << shift;
      if (byte < 0x80) return result >>> 0;
      shift += 7;
      if (shift > 63) throw new Error("varint too long");
    }
  }

  /** A 64-bit varint as an unsigned bigint. */
  u64(): bigint {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const byte = b[this.pos++] as number;
      const bits = byte & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if (byte < 0x80) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
      shift += 7;
      if (shift > 63) throw new Error("varint too long");
    }
  }

  /** Length of a length-delimited field; the bytes start at `pos`. */
  len(): number {
    const n = this.u32();
    if (this.pos + n > this.end) throw new Error("length past the end of the message");
    return n;
  }

  bytes(): Uint8Array {
    const n = this.len();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(): string {
    const n = this.len();
    const start = this.pos;
    this.pos += n;
    const b = this.buf;
    if (n <= 64) {
      let s = "";
      for (let i = start; i < start + n; i++) {
        const c = b[i] as number;
        if (c >= 0x80) return utf8.decode(b.subarray(start, start + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8.decode(b.subarray(start, start + n));
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.u64();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const n = this.len();
        this.pos += n;
        return;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new Error("field past the end of the message");
  }
}

function sub(r: Reader): Reader {
  const n = r.len();
  const out = new Reader(r.buf, r.pos, r.pos + n);
  r.pos += n;
  return out;
}

function timestamp(r: Reader): Timestamp {
  const t = create(TimestampSchema);
  while (r.pos < r.end) {
    const tag = r.u32();
    const no = tag >>> 3;
    if (no === 1 && (tag & 7) === 0) t.seconds = BigInt.asIntN(64, r.u64());
    else if (no === 2 && (tag & 7) === 0) t.nanos = r.u32() | 0;
    else r.skip(tag & 7);
  }
  return t;
}

/** source, destination, identity, namespace and pod name of an Endpoint; the rest skipped. */
function endpoint(r: Reader): Flow["source"] {
  const e = create(EndpointSchema);
  while (r.pos < r.end) {
    const tag = r.u32();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wire === 0) e.ID = r.u32();
        else r.skip(wire);
        break;
      case 2:
        if (wire === 0) e.identity = r.u32();
        else r.skip(wire);
        break;
      case 3:
        if (wire === 2) e.namespace = r.str();
        else r.skip(wire);
        break;
      case 5:
        if (wire === 2) e.podName = r.str();
        else r.skip(wire);
        break;
      case 7:
        if (wire === 2) e.clusterName = r.str();
        else r.skip(wire);
        break;
      default:
        r.skip(wire);
    }
  }
  return e;
}

function ip(r: Reader): Flow["IP"] {
  const v = create(IPSchema);
  while (r.pos < r.end) {
    const tag = r.u32();
    const wire = tag & 7;
    const no = tag >>> 3;
    if (no === 1 && wire === 2) v.source = r.str();
    else if (no === 2 && wire === 2) v.destination = r.str();
    else if (no === 3 && wire === 0) v.ipVersion = r.u32() | 0;
    else r.skip(wire);
  }
  return v;
}

/** Fields 1 and 2 of a message whose first two fields are uint32 (ports, ICMP type and code). */
function twoU32(r: Reader): [number, number] {
  let a = 0;
  let b = 0;
  while (r.pos < r.end) {
    const tag = r.u32();
    if (tag === 8) a = r.u32();
    else if (tag === 16) b = r.u32();
    else r.skip(tag & 7);
  }
  return [a, b];
}

/**
 * Layer 4 as compact output reads it: ports of TCP, UDP and SCTP, type and code of ICMP
 * (TCP flags and SCTP chunk types, which it does not print, keep their defaults); other
 * protocols decode in full.
 */
function layer4(r: Reader): Flow["l4"] {
  const start = r.pos;
  const l4 = create(Layer4Schema);
  while (r.pos < r.end) {
    const tag = r.u32();
    const wire = tag & 7;
    const no = tag >>> 3;
    if (wire !== 2) {
      r.skip(wire);
      continue;
    }
    switch (no) {
      case 1:
      case 2:
      case 5: {
        const [sourcePort, destinationPort] = twoU32(sub(r));
        const schema = no === 1 ? TCPSchema : no === 2 ? UDPSchema : SCTPSchema;
        const value = create(schema, { sourcePort, destinationPort });
        l4.protocol = {
          case: no === 1 ? "TCP" : no === 2 ? "UDP" : "SCTP",
          value,
        } as Layer4["protocol"];
        break;
      }
      case 3:
      case 4: {
        const [type, code] = twoU32(sub(r));
        l4.protocol =
          no === 3
            ? { case: "ICMPv4", value: create(ICMPv4Schema, { type, code }) }
            : { case: "ICMPv6", value: create(ICMPv6Schema, { type, code }) };
        break;
      }
      default:
        return fromBinary(Layer4Schema, r.buf.subarray(start, r.end), READ);
    }
  }
  return l4;
}

/** name and namespace of a Service. */
function service(r: Reader): Flow["sourceService"] {
  const s = create(ServiceSchema);
  while (r.pos < r.end) {
    const tag = r.u32();
    if (tag === 10) s.name = r.str();
    else if (tag === 18) s.namespace = r.str();
    else r.skip(tag & 7);
  }
  return s;
}

/** type and sub_type of a CiliumEventType. */
function eventType(r: Reader): Flow["eventType"] {
  const e = create(CiliumEventTypeSchema);
  while (r.pos < r.end) {
    const tag = r.u32();
    if (tag === 8) e.type = r.u32() | 0;
    else if (tag === 16) e.subType = r.u32() | 0;
    else r.skip(tag & 7);
  }
  return e;
}

/** A zero Flow to copy: create() of the whole schema costs more than the decoding. */
const FLOW_ZERO: Flow = create(FlowSchema);
const FLOW_LISTS = Object.entries(FLOW_ZERO)
  .filter(([, v]) => Array.isArray(v))
  .map(([k]) => k);

function zeroFlow(): Flow {
  const f = { ...FLOW_ZERO } as Record<string, unknown>;
  for (const k of FLOW_LISTS) f[k] = [];
  return f as Flow;
}

/**
 * The Flow fields compact output reads (time, uuid, verdict, hosts, identities, ports,
 * names, services, type, L7 kind, event type, direction, policies, trace id, summary,
 * auth type, node name, is_reply, extensions: the process); every other field keeps its default.
 */
export function decodeCompactFlow(buf: Uint8Array, start = 0, end = buf.length): Flow {
  const r = new Reader(buf, start, end);
  const f = zeroFlow();
  while (r.pos < r.end) {
    const tag = r.u32();
    const wire = tag & 7;
    const no = tag >>> 3;
    if (wire === 0) {
      switch (no) {
        case 2:
          f.verdict = r.u32() | 0;
          continue;
        case 35:
          f.authType = r.u32() | 0;
          continue;
        case 22:
          f.trafficDirection = r.u32() | 0;
          continue;
        case 23:
          f.policyMatchType = r.u32();
          continue;
        case 25:
          f.dropReasonDesc = r.u32() | 0;
          continue;
        case 27:
          f.debugCapturePoint = r.u32() | 0;
          continue;
        case 31:
          f.sockXlatePoint = r.u32() | 0;
          continue;
        default:
          r.skip(wire);
          continue;
      }
    }
    if (wire !== 2) {
      r.skip(wire);
      continue;
    }
    switch (no) {
      case 1:
        f.time = timestamp(sub(r));
        break;
      case 34:
        f.uuid = r.str();
        break;
      case 4:
        f.ethernet = fromBinary(EthernetSchema, r.bytes(), READ);
        break;
      case 5:
        f.IP = ip(sub(r));
        break;
      case 6:
        f.l4 = layer4(sub(r));
        break;
      case 8:
        f.source = endpoint(sub(r));
        break;
      case 9:
        f.destination = endpoint(sub(r));
        break;
      case 11:
        f.nodeName = r.str();
        break;
      case 13:
        f.sourceNames.push(r.str());
        break;
      case 14:
        f.destinationNames.push(r.str());
        break;
      case 15:
        f.l7 = fromBinary(Layer7Schema, r.bytes(), READ);
        break;
      case 19:
        f.eventType = eventType(sub(r));
        break;
      case 20:
        f.sourceService = service(sub(r));
        break;
      case 21:
        f.destinationService = service(sub(r));
        break;
      case 26: {
        const w = sub(r);
        let value = false;
        while (w.pos < w.end) {
          const t = w.u32();
          if (t === 8) value = w.u32() !== 0;
          else w.skip(t & 7);
        }
        f.isReply = value;
        break;
      }
      case 40:
        f.ipTraceId = fromBinary(IPTraceIDSchema, r.bytes(), READ);
        break;
      case 43:
        f.extDropReasonDesc = r.str();
        break;
      case 100000:
        f.Summary = r.str();
        break;
      case 150000:
        f.extensions = fromBinary(AnySchema, r.bytes(), READ);
        break;
      case 21001:
        f.egressAllowedBy.push(fromBinary(PolicySchema, r.bytes(), READ));
        break;
      case 21002:
        f.ingressAllowedBy.push(fromBinary(PolicySchema, r.bytes(), READ));
        break;
      case 21004:
        f.egressDeniedBy.push(fromBinary(PolicySchema, r.bytes(), READ));
        break;
      case 21005:
        f.ingressDeniedBy.push(fromBinary(PolicySchema, r.bytes(), READ));
        break;
      default:
        r.skip(wire);
    }
  }
  return f;
}

/**
 * One GetFlowsResponse message for compact output: a flow through
 * {@link decodeCompactFlow}, anything else (lost events, node status) in full.
 */
export function decodeCompactResponse(buf: Uint8Array): GetFlowsResponse {
  const r = new Reader(buf, 0, buf.length);
  let flow: { start: number; end: number } | undefined;
  let other = false;
  let nodeName = "";
  let time: Timestamp | undefined;
  while (r.pos < r.end) {
    const tag = r.u32();
    const wire = tag & 7;
    const no = tag >>> 3;
    if (no === 1 && wire === 2) {
      const n = r.len();
      flow = { start: r.pos, end: r.pos + n };
      r.pos += n;
    } else if (no === 1000 && wire === 2) nodeName = r.str();
    else if (no === 1001 && wire === 2) time = timestamp(sub(r));
    else {
      if (no === 2 || no === 3) other = true;
      r.skip(wire);
    }
  }
  if (other || flow === undefined) return fromBinary(GetFlowsResponseSchema, buf, READ);
  const resp = create(GetFlowsResponseSchema, {
    responseTypes: { case: "flow", value: decodeCompactFlow(buf, flow.start, flow.end) },
    nodeName,
  });
  if (time !== undefined) resp.time = time;
  return resp;
}
