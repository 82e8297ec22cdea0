import { create } from "@bufbuild/protobuf";
import {
  MESSAGE_TYPE,
  MESSAGE_TYPE_BY_NAME,
  messageTypeByName,
  traceSubtypeByName,
} from "@periscope/model";
import {
  type DropReason,
  DropReasonSchema,
  EventTypeFilterSchema,
  type FlowFilter,
  IPVersion,
  type TCPFlags,
  TCPFlagsSchema,
  TrafficDirection,
  Verdict,
  VerdictSchema,
} from "@periscope/proto";
import { UsageError } from "./args.ts";

/** A change a filter flag makes to one FlowFilter. */
export type Update = (f: FlowFilter) => void;

/** `--verdict` value (case-insensitive enum name). */
export function parseVerdict(value: string): Verdict {
  const v = VerdictSchema.values.find((e) => e.name === value.toUpperCase());
  if (!v || v.number === Verdict.VERDICT_UNKNOWN) {
    const names = VerdictSchema.values.filter((e) => e.number !== 0).map((e) => e.name);
    throw new UsageError(`invalid --verdict "${value}": expected one of ${names.join(", ")}`);
  }
  return v.number;
}

/** `--type` value: `<type>` or `<type>:<subtype>`, names or numbers as hubble takes them. */
export function parseType(value: string): Update {
  const colon = value.indexOf(":");
  const name = colon < 0 ? value : value.slice(0, colon);
  const sub = colon < 0 ? undefined : value.slice(colon + 1);
  const type =
    messageTypeByName(name) ??
    (/^\d+$/.test(name) && Number(name) < 2 ** 31 ? Number(name) : undefined);
  if (type === undefined) {
    throw new UsageError(
      `invalid --type "${value}": expected a number or one of ${Object.keys(MESSAGE_TYPE_BY_NAME).join(", ")}`,
    );
  }
  let subType: number | undefined;
  if (sub !== undefined) {
    if (type === MESSAGE_TYPE.TRACE) subType = traceSubtypeByName(sub);
    if (subType === undefined && /^\d+$/.test(sub) && Number(sub) < 2 ** 31) subType = Number(sub);
    if (subType === undefined)
      throw new UsageError(`invalid --type "${value}": unknown subtype "${sub}"`);
  }
  const filter = create(EventTypeFilterSchema, {
    type,
    matchSubType: subType !== undefined,
    subType: subType ?? 0,
  });
  return (f) => f.eventType.push(filter);
}

/** `--drop-reason-desc` value: a DropReason name (case-insensitive). */
export function parseDropReason(value: string): DropReason {
  if (value === "") throw new UsageError("empty --drop-reason-desc value");
  const v = DropReasonSchema.values.find((e) => e.name === value.toUpperCase());
  if (!v)
    throw new UsageError(
      `invalid --drop-reason-desc "${value}": not a drop reason name (e.g. POLICY_DENIED)`,
    );
  return v.number as DropReason;
}

/** Cilium's reserved identities by name, as `--identity` accepts them. */
const RESERVED_IDENTITIES: Readonly<Record<string, number>> = {
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  "remote-node": 6,
  "kube-apiserver": 7,
  ingress: 8,
  "world-ipv4": 9,
  "world-ipv6": 10,
};

/** `--identity` value: a number or a reserved identity name. */
export function parseIdentity(value: string): number {
  const reserved = Object.hasOwn(RESERVED_IDENTITIES, value)
    ? RESERVED_IDENTITIES[value]
    : undefined;
  if (reserved !== undefined) return reserved;
  if (/^\d+$/.test(value) && Number(value) <= 0xffff_ffff) return Number(value);
  throw new UsageError(
    `invalid security identity "${value}", expected one of [${Object.keys(RESERVED_IDENTITIES).join(" ")}] or a numeric value`,
  );
}

const TCP_FLAG_NAMES = ["SYN", "FIN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"] as const;

/** `--tcp-flags` value: comma-separated flag names, e.g. `syn,ack`. */
export function parseTcpFlags(value: string): TCPFlags {
  const flags = create(TCPFlagsSchema);
  for (const part of value.split(",")) {
    const name = TCP_FLAG_NAMES.find((n) => n === part.toUpperCase());
    if (!name) throw new UsageError(`unknown tcp flag: ${part}`);
    flags[name] = true;
  }
  return flags;
}

/** `--ip-version` value: none, v4 or v6 (also 4, ipv4, ip4, 6, ipv6, ip6 as hubble takes them). */
export function parseIpVersion(value: string): IPVersion {
  const lower = value.toLowerCase();
  if (["4", "v4", "ipv4", "ip4"].includes(lower)) return IPVersion.IPv4;
  if (["6", "v6", "ipv6", "ip6"].includes(lower)) return IPVersion.IPv6;
  if (lower === "none") return IPVersion.IP_NOT_USED;
  throw new UsageError(`invalid --ip-version "${value}": expected none, v4 or v6`);
}

/** `--traffic-direction` value: ingress or egress. */
export function parseDirection(value: string): TrafficDirection {
  const v = { ingress: TrafficDirection.INGRESS, egress: TrafficDirection.EGRESS }[
    value.toLowerCase()
  ];
  if (v === undefined)
    throw new UsageError(`invalid --traffic-direction "${value}": expected ingress or egress`);
  return v;
}
