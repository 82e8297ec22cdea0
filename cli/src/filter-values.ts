import { create } from "@bufbuild/protobuf";
import {
  MESSAGE_TYPE,
  MESSAGE_TYPE_BY_NAME,
  messageTypeByName,
  traceSubtypeByName,
} from "@periscope/model";
import {
  EventTypeFilterSchema,
  type FlowFilter,
  IPVersion,
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

/** `--type` value: `<type>` or `<type>:<subtype>`. */
export function parseType(value: string): Update {
  const [name = "", sub] = value.split(":", 2);
  const type = messageTypeByName(name);
  if (type === undefined) {
    throw new UsageError(
      `invalid --type "${value}": expected one of ${Object.keys(MESSAGE_TYPE_BY_NAME).join(", ")}`,
    );
  }
  let subType: number | undefined;
  if (sub !== undefined) {
    subType =
      type === MESSAGE_TYPE.TRACE
        ? traceSubtypeByName(sub)
        : /^\d+$/.test(sub)
          ? Number(sub)
          : undefined;
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

/** `--ip-version` value: v4 or v6. */
export function parseIpVersion(value: string): IPVersion {
  const v = { v4: IPVersion.IPv4, ipv4: IPVersion.IPv4, v6: IPVersion.IPv6, ipv6: IPVersion.IPv6 }[
    value.toLowerCase()
  ];
  if (v === undefined) throw new UsageError(`invalid --ip-version "${value}": expected v4 or v6`);
  return v;
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
