/**
 * Kernel records as `periscope monitor` shows them: one {@link MonitorRecord} per
 * record of a RawFrame, with the captured packet decoded. Trace and debug records use
 * @periscope/wire's decoders; drop and policy-verdict records are read here at the
 * offsets of bpf/include/periscope.h (`struct pscope_drop`, `struct
 * pscope_policy_verdict`: same fields as a trace up to netns_cookie at 40, data at 56).
 */
import { type DecodedPacket, decodePacket } from "@periscope/flow";
import {
  DROP_VERSION,
  decodeDebugRecord,
  decodeRecordType,
  decodeTraceRecord,
  FLAG_L3,
  MalformedRecordError,
  POLICY_VERDICT_VERSION,
  RECORD_TYPE_DEBUG,
  RECORD_TYPE_DROP,
  RECORD_TYPE_POLICY_VERDICT,
  RECORD_TYPE_TRACE,
  TRACE_LAYOUT,
} from "@periscope/wire";

/** The record kinds `--type` selects (lost and agent are not kernel records). */
export type RecordKind = "trace" | "drop" | "policy-verdict" | "debug";

/** Fields every packet-carrying record has. */
interface PacketFields {
  readonly cpu: number;
  readonly tsBootNs: bigint;
  readonly ifindex: number;
  readonly netnsCookie: bigint;
  readonly flowHash: number;
  readonly flags: number;
  readonly origLen: number;
  /** The captured bytes (Ethernet frame, or IP packet with FLAG_L3). */
  readonly data: Uint8Array;
  /** Decoded headers; undefined when the capture does not decode. */
  readonly packet: DecodedPacket | undefined;
}

/** One decoded kernel record. */
export type MonitorRecord =
  | (PacketFields & {
      readonly kind: "trace";
      readonly obsPoint: number;
      /** PSCOPE_TRACE_REASON_* (trace v2, byte 39). */
      readonly traceReason: number;
    })
  | (PacketFields & {
      readonly kind: "drop";
      /** PSCOPE_DROP_SRC_*. */
      readonly source: number;
      readonly reason: number;
      readonly obsPoint: number;
      readonly location: bigint;
    })
  | (PacketFields & {
      readonly kind: "policy-verdict";
      readonly ruleId: number;
      readonly matchType: number;
      readonly action: number;
      readonly direction: number;
      readonly obsPoint: number;
    })
  | {
      readonly kind: "debug";
      readonly cpu: number;
      readonly tsBootNs: bigint;
      readonly ifindex: number;
      readonly netnsCookie: bigint;
      readonly flowHash: number;
      readonly subtype: number;
      readonly args: readonly [number, number, number];
    };

/** Fixed part of drop and policy-verdict records, bytes (`data` follows). */
const FIXED_56 = 56;

function decodeCapture(data: Uint8Array, flags: number): DecodedPacket | undefined {
  try {
    return decodePacket(data, flags & FLAG_L3 ? "ip" : "ethernet");
  } catch {
    // An undecodable capture is still shown (hex with -v); only the summary is missing.
    return undefined;
  }
}

/** Checks version and length of a 56-byte-fixed record; returns its view and cap_len. */
function fixed56(bytes: Uint8Array, what: string, version: number) {
  if ((bytes[2] ?? 0) !== version) {
    throw new MalformedRecordError(
      "bad_version",
      `${what} record version ${bytes[2]} unsupported, expected ${version}`,
    );
  }
  if (bytes.byteLength < FIXED_56) {
    throw new MalformedRecordError(
      "too_short",
      `${what} record too short: ${bytes.byteLength} bytes, fixed part needs ${FIXED_56}`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const capLen = v.getUint32(12, true);
  if (FIXED_56 + capLen !== bytes.byteLength) {
    throw new MalformedRecordError(
      "cap_len_beyond_sample",
      `${what} record cap_len ${capLen} does not match its ${bytes.byteLength} bytes`,
    );
  }
  const data = bytes.subarray(FIXED_56);
  const flags = bytes[3] ?? 0;
  const common: PacketFields = {
    cpu: v.getUint32(4, true),
    origLen: v.getUint32(8, true),
    flags,
    tsBootNs: v.getBigUint64(16, true),
    ifindex: v.getUint32(24, true),
    flowHash: v.getUint32(32, true),
    netnsCookie: v.getBigUint64(40, true),
    data,
    packet: decodeCapture(data, flags),
  };
  return { v, common };
}

/**
 * Decodes one record of a RawFrame.
 * @throws MalformedRecordError (bad layout) or Error naming an unknown record type.
 */
export function decodeMonitorRecord(bytes: Uint8Array): MonitorRecord {
  const type = decodeRecordType(bytes);
  switch (type) {
    case RECORD_TYPE_TRACE: {
      const r = decodeTraceRecord(bytes);
      return {
        kind: "trace",
        cpu: r.cpu,
        tsBootNs: r.tsBootNs,
        ifindex: r.ifindex,
        netnsCookie: r.netnsCookie,
        flowHash: r.flowHash,
        flags: r.flags,
        origLen: r.origLen,
        data: r.data,
        packet: decodeCapture(r.data, r.flags),
        obsPoint: r.obsPoint,
        traceReason: bytes[TRACE_LAYOUT.fields.trace_reason.offset] ?? 0,
      };
    }
    case RECORD_TYPE_DROP: {
      const { v, common } = fixed56(bytes, "drop", DROP_VERSION);
      return {
        kind: "drop",
        ...common,
        source: bytes[1] ?? 0,
        reason: v.getUint32(28, true),
        obsPoint: bytes[38] ?? 0,
        location: v.getBigUint64(48, true),
      };
    }
    case RECORD_TYPE_POLICY_VERDICT: {
      const { v, common } = fixed56(bytes, "policy verdict", POLICY_VERDICT_VERSION);
      return {
        kind: "policy-verdict",
        ...common,
        ruleId: v.getUint32(28, true),
        matchType: bytes[38] ?? 0,
        action: bytes[39] ?? 0,
        direction: bytes[48] ?? 0,
        obsPoint: bytes[49] ?? 0,
      };
    }
    case RECORD_TYPE_DEBUG: {
      const r = decodeDebugRecord(bytes);
      return {
        kind: "debug",
        cpu: r.cpu,
        tsBootNs: r.tsBootNs,
        ifindex: r.ifindex,
        netnsCookie: r.netnsCookie,
        flowHash: r.flowHash,
        subtype: r.subtype,
        args: [r.arg1, r.arg2, r.arg3],
      };
    }
    default:
      throw new Error(`unknown record type ${type}`);
  }
}
