/**
 * Kernel records as `periscope monitor` shows them: one {@link MonitorRecord} per
 * record of a RawFrame (decoded by @periscope/wire), with the captured packet decoded.
 */
import { type DecodedPacket, decodePacket } from "@periscope/flow";
import {
  decodeDebugRecord,
  decodeDropRecord,
  decodePolicyVerdictRecord,
  decodeRecordType,
  decodeTraceRecord,
  FLAG_L3,
  RECORD_TYPE_DEBUG,
  RECORD_TYPE_DROP,
  RECORD_TYPE_POLICY_VERDICT,
  RECORD_TYPE_TRACE,
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

function decodeCapture(data: Uint8Array, flags: number): DecodedPacket | undefined {
  try {
    return decodePacket(data, flags & FLAG_L3 ? "ip" : "ethernet");
  } catch {
    // An undecodable capture is still shown (hex with -v); only the summary is missing.
    return undefined;
  }
}

/** The fields trace, drop and policy verdict records share, with the capture decoded. */
function packetFields(r: Omit<PacketFields, "packet">): PacketFields {
  return {
    cpu: r.cpu,
    tsBootNs: r.tsBootNs,
    ifindex: r.ifindex,
    netnsCookie: r.netnsCookie,
    flowHash: r.flowHash,
    flags: r.flags,
    origLen: r.origLen,
    data: r.data,
    packet: decodeCapture(r.data, r.flags),
  };
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
        ...packetFields(r),
        obsPoint: r.obsPoint,
        traceReason: r.traceReason,
      };
    }
    case RECORD_TYPE_DROP: {
      const r = decodeDropRecord(bytes);
      return {
        kind: "drop",
        ...packetFields(r),
        source: r.dropSource,
        reason: r.reason,
        obsPoint: r.obsPoint,
        location: r.location,
      };
    }
    case RECORD_TYPE_POLICY_VERDICT: {
      const r = decodePolicyVerdictRecord(bytes);
      return {
        kind: "policy-verdict",
        ...packetFields(r),
        ruleId: r.ruleId,
        matchType: r.matchType,
        action: r.action,
        direction: r.direction,
        obsPoint: r.obsPoint,
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
