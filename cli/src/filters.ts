import { clone, create, equals } from "@bufbuild/protobuf";
import { type FlowFilter, FlowFilter_ExperimentalSchema, FlowFilterSchema } from "@periscope/proto";
import { type FlagSpec, type FlagUse, UsageError } from "./args.ts";
import {
  parseDirection,
  parseIpVersion,
  parseType,
  parseVerdict,
  type Update,
} from "./filter-values.ts";

/** How a filter flag applies: to both alternatives, or source side left / destination right. */
interface FilterFlag {
  readonly spec: FlagSpec;
  /** Applied to the whole filter (both the left and the right alternative). */
  readonly both?: (value: string) => Update;
  /** Bidirectional flags: left gets the source form, right the destination form. */
  readonly left?: (value: string) => Update;
  readonly right?: (value: string) => Update;
}

const str = (name: string, help: string, short?: string): FlagSpec =>
  short ? { name, help, kind: "string", short } : { name, help, kind: "string" };

/** `--namespace ns` selects pods `ns/…`, like hubble. */
const nsPrefix = (v: string): string => `${v.replace(/\/$/, "")}/`;

/** Every filter flag of `observe`, with hubble's names and semantics. */
export const FILTER_FLAGS: readonly FilterFlag[] = [
  {
    spec: str("ip", "Flows with this source or destination IP (or CIDR)"),
    left: (v) => (f) => f.sourceIp.push(v),
    right: (v) => (f) => f.destinationIp.push(v),
  },
  { spec: str("from-ip", "Flows with this source IP"), both: (v) => (f) => f.sourceIp.push(v) },
  {
    spec: str("to-ip", "Flows with this destination IP"),
    both: (v) => (f) => f.destinationIp.push(v),
  },
  {
    spec: str("pod", "Flows from or to this pod ([namespace/]<pod-name-prefix>)"),
    left: (v) => (f) => f.sourcePod.push(v),
    right: (v) => (f) => f.destinationPod.push(v),
  },
  { spec: str("from-pod", "Flows from this pod"), both: (v) => (f) => f.sourcePod.push(v) },
  { spec: str("to-pod", "Flows to this pod"), both: (v) => (f) => f.destinationPod.push(v) },
  {
    spec: str("namespace", "Flows from or to pods in this namespace", "n"),
    left: (v) => (f) => f.sourcePod.push(nsPrefix(v)),
    right: (v) => (f) => f.destinationPod.push(nsPrefix(v)),
  },
  {
    spec: str("from-namespace", "Flows from pods in this namespace"),
    both: (v) => (f) => f.sourcePod.push(nsPrefix(v)),
  },
  {
    spec: str("to-namespace", "Flows to pods in this namespace"),
    both: (v) => (f) => f.destinationPod.push(nsPrefix(v)),
  },
  {
    spec: str("label", "Flows from or to endpoints with this label selector", "l"),
    left: (v) => (f) => f.sourceLabel.push(v),
    right: (v) => (f) => f.destinationLabel.push(v),
  },
  {
    spec: str("from-label", "Flows from endpoints with this label selector"),
    both: (v) => (f) => f.sourceLabel.push(v),
  },
  {
    spec: str("to-label", "Flows to endpoints with this label selector"),
    both: (v) => (f) => f.destinationLabel.push(v),
  },
  {
    spec: str("port", "Flows with this source or destination L4 port"),
    left: (v) => (f) => f.sourcePort.push(v),
    right: (v) => (f) => f.destinationPort.push(v),
  },
  {
    spec: str("from-port", "Flows with this source port"),
    both: (v) => (f) => f.sourcePort.push(v),
  },
  {
    spec: str("to-port", "Flows with this destination port"),
    both: (v) => (f) => f.destinationPort.push(v),
  },
  {
    spec: str("fqdn", "Flows from or to this FQDN"),
    left: (v) => (f) => f.sourceFqdn.push(v),
    right: (v) => (f) => f.destinationFqdn.push(v),
  },
  { spec: str("from-fqdn", "Flows from this FQDN"), both: (v) => (f) => f.sourceFqdn.push(v) },
  { spec: str("to-fqdn", "Flows to this FQDN"), both: (v) => (f) => f.destinationFqdn.push(v) },
  {
    spec: str("protocol", "Flows with this L4/L7 protocol (tcp, udp, icmp, dns, http, …)"),
    both: (v) => (f) => f.protocol.push(v),
  },
  {
    spec: str("verdict", "Flows with this verdict (FORWARDED, DROPPED, …)"),
    both: (v) => {
      const verdict = parseVerdict(v);
      return (f) => f.verdict.push(verdict);
    },
  },
  {
    spec: str("type", "Events of this type (trace, drop, l7, trace:to-network, …)", "t"),
    both: (v) => parseType(v),
  },
  {
    spec: str("node-name", "Flows observed on this node (glob patterns allowed)"),
    both: (v) => (f) => f.nodeName.push(v),
  },
  {
    spec: str("ip-version", "Flows of this IP version (v4, v6)"),
    both: (v) => {
      const ver = parseIpVersion(v);
      return (f) => f.ipVersion.push(ver);
    },
  },
  {
    spec: str("traffic-direction", "Flows in this direction (ingress, egress)"),
    both: (v) => {
      const d = parseDirection(v);
      return (f) => f.trafficDirection.push(d);
    },
  },
  {
    spec: str("http-status", "Flows with this HTTP status code prefix"),
    both: (v) => (f) => f.httpStatusCode.push(v),
  },
  {
    spec: str("http-method", "Flows with this HTTP method"),
    both: (v) => (f) => f.httpMethod.push(v),
  },
  {
    spec: str("http-path", "Flows with this HTTP path (regex)"),
    both: (v) => (f) => f.httpPath.push(v),
  },
  { spec: str("uuid", "The flow with this UUID"), both: (v) => (f) => f.uuid.push(v) },
  {
    spec: str("cel-expression", "Flows for which this CEL expression (on _flow) is true"),
    both: (v) => (f) => {
      f.experimental ??= create(FlowFilter_ExperimentalSchema);
      f.experimental.celExpression.push(v);
    },
  },
];

/** `--not`: negates the filter flag that follows it. */
export const NOT_FLAG: FlagSpec = {
  name: "not",
  kind: "bool",
  help: "Negate the next filter flag",
};

/** Pairs hubble refuses to combine (they would make the two alternatives ambiguous). */
const CONFLICTS: readonly (readonly [string, string])[] = [
  ["ip", "from-ip"],
  ["ip", "to-ip"],
  ["pod", "from-pod"],
  ["pod", "to-pod"],
  ["namespace", "from-namespace"],
  ["namespace", "to-namespace"],
  ["label", "from-label"],
  ["label", "to-label"],
  ["port", "from-port"],
  ["port", "to-port"],
  ["fqdn", "from-fqdn"],
  ["fqdn", "to-fqdn"],
];

/** Hubble's filterTracker: a left and (for bidirectional flags) a right alternative. */
class FilterTracker {
  left: FlowFilter | undefined;
  right: FlowFilter | undefined;
  readonly used = new Set<string>();

  apply(flag: FilterFlag, value: string): void {
    for (const [a, b] of CONFLICTS) {
      const other = flag.spec.name === a ? b : flag.spec.name === b ? a : undefined;
      if (other && this.used.has(other)) {
        throw new UsageError(`filters --${a} and --${b} cannot be combined`);
      }
    }
    this.used.add(flag.spec.name);
    if (flag.both) {
      const update = flag.both(value);
      this.#side("left", update);
      if (this.right) update(this.right);
    } else if (flag.left && flag.right) {
      const hadRight = this.right !== undefined;
      if (!hadRight) this.right = this.left ? clone(FlowFilterSchema, this.left) : undefined;
      this.#side("left", flag.left(value));
      this.#side("right", flag.right(value));
    }
  }

  #side(side: "left" | "right", update: Update): void {
    const f = this[side] ?? create(FlowFilterSchema);
    this[side] = f;
    update(f);
  }

  filters(): FlowFilter[] {
    const out = [this.left, this.right].filter((f): f is FlowFilter => f !== undefined);
    const [a, b] = out;
    if (a && b && equals(FlowFilterSchema, a, b)) return [a];
    return out;
  }
}

/**
 * Turns filter flags (in order) into whitelist and blacklist like `hubble observe`:
 * `--ip X` matches X as source OR destination (two alternatives); other flags narrow both
 * alternatives; `--not` sends the next filter flag to the blacklist.
 * Throws {@link UsageError}.
 */
export function buildFilters(uses: readonly FlagUse[]): {
  whitelist: FlowFilter[];
  blacklist: FlowFilter[];
} {
  const white = new FilterTracker();
  const black = new FilterTracker();
  let negate = false;
  for (const use of uses) {
    if (use.name === NOT_FLAG.name) {
      negate = use.value === "true";
      continue;
    }
    const flag = FILTER_FLAGS.find((f) => f.spec.name === use.name);
    if (!flag) continue;
    (negate ? black : white).apply(flag, use.value);
    negate = false;
  }
  if (negate) throw new UsageError("--not must be followed by a filter flag");
  return { whitelist: white.filters(), blacklist: black.filters() };
}
