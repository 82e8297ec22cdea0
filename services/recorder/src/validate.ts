/**
 * Checks a StartRecording the way Cilium's recorder did and turns it into a plan:
 * InvalidArgument naming the field (`filesink.file_prefix`, `include[1].source_cidr`, ...)
 * for anything wrong. No path ever comes from the client.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { RECORD_MAX_CAPTURE_LEN, RECORD_MAX_FILTERS, type RecordFilterSpec } from "@periscope/bus";
import { parseIp } from "@periscope/model";
import type { recorder } from "@periscope/proto";

/** What a valid StartRecording asks for. */
export interface RecordingPlan {
  readonly prefix: string;
  readonly filters: readonly RecordFilterSpec[];
  /** Bytes kept per packet (0 in the request = whole packet = RECORD_MAX_CAPTURE_LEN). */
  readonly capLen: number;
  /** Stop conditions; 0 = none. */
  readonly maxPackets: number;
  readonly maxBytes: number;
  readonly maxMs: number;
}

/** Default file prefix (Cilium's). */
export const DEFAULT_PREFIX = "hubble";
const PREFIX_RE = /^[a-z][a-z0-9]{0,19}$/;
const PROTOCOLS = new Map<number, string>([
  [0, "ANY"],
  [6, "TCP"],
  [17, "UDP"],
  [132, "SCTP"],
]);

function invalid(field: string, detail: string): never {
  throw new ConnectError(`${field}: ${detail}`, Code.InvalidArgument);
}

/** Parses `addr[/len]`; a bare address is a single host. */
export function parseCidrText(
  text: string,
): { family: 4 | 6; addr: string; prefix: number } | string {
  const t = text.trim();
  if (t === "") return "must not be empty (0.0.0.0/0 or ::/0 match everything)";
  const slash = t.indexOf("/");
  const addr = slash < 0 ? t : t.slice(0, slash);
  const bytes = parseIp(addr);
  if (bytes === undefined) return `"${text}" is not an IP address or CIDR`;
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const len = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(len) || Number(len) > bits) {
      return `"${text}" has a bad prefix length (0..${bits})`;
    }
    prefix = Number(len);
  }
  return { family: bytes.length === 4 ? 4 : 6, addr, prefix };
}

/** Validates `start`; throws ConnectError(InvalidArgument) naming the first bad field. */
export function planRecording(start: recorder.StartRecording): RecordingPlan {
  const prefixText = start.filesink?.filePrefix ?? "";
  const prefix = prefixText === "" ? DEFAULT_PREFIX : prefixText;
  if (!PREFIX_RE.test(prefix)) {
    invalid(
      "filesink.file_prefix",
      `"${prefixText}" must be a lowercase letter followed by up to 19 lowercase letters or digits`,
    );
  }
  if (start.include.length === 0) invalid("include", "at least one filter is required");
  if (start.include.length > RECORD_MAX_FILTERS) {
    invalid("include", `at most ${RECORD_MAX_FILTERS} filters, got ${start.include.length}`);
  }
  const filters = start.include.map((f, i): RecordFilterSpec => {
    const at = `include[${i}]`;
    const src = parseCidrText(f.sourceCidr);
    if (typeof src === "string") invalid(`${at}.source_cidr`, src);
    const dst = parseCidrText(f.destinationCidr);
    if (typeof dst === "string") invalid(`${at}.destination_cidr`, dst);
    if (src.family !== dst.family) {
      invalid(
        `${at}.destination_cidr`,
        `IPv${dst.family} while source_cidr is IPv${src.family}; both must be the same family`,
      );
    }
    if (f.sourcePort > 65535)
      invalid(`${at}.source_port`, `${f.sourcePort} is not a port (0..65535)`);
    if (f.destinationPort > 65535) {
      invalid(`${at}.destination_port`, `${f.destinationPort} is not a port (0..65535)`);
    }
    const proto = Number(f.protocol);
    if (!PROTOCOLS.has(proto)) {
      invalid(`${at}.protocol`, `unknown protocol ${proto} (ANY, TCP, UDP or SCTP)`);
    }
    return {
      family: src.family,
      proto,
      srcAddr: src.addr,
      srcPrefix: src.prefix,
      dstAddr: dst.addr,
      dstPrefix: dst.prefix,
      srcPort: f.sourcePort,
      dstPort: f.destinationPort,
    };
  });
  const capLen =
    start.maxCaptureLength === 0
      ? RECORD_MAX_CAPTURE_LEN
      : Math.min(start.maxCaptureLength, RECORD_MAX_CAPTURE_LEN);
  const sc = start.stopCondition;
  let maxMs = 0;
  if (sc?.timeElapsed) {
    const ms = Number(sc.timeElapsed.seconds) * 1000 + sc.timeElapsed.nanos / 1e6;
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      invalid("stop_condition.time_elapsed", "must not be negative");
    }
    maxMs = ms;
  }
  return {
    prefix,
    filters,
    capLen,
    maxPackets: Number(sc?.packetsCapturedCount ?? 0n),
    maxBytes: Number(sc?.bytesCapturedCount ?? 0n),
    maxMs,
  };
}
