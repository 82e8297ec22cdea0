/**
 * `observe`'s filter flags, built into whitelist/blacklist FlowFilters the way hubble's
 * filter tracker does: a "left" and a "right" alternative (bidirectional flags such as
 * `--ip` put the source form left and the destination form right), namespace flags
 * applied to the pod/service filters at the end, `--not` sending the next flag to the
 * blacklist, and hubble's groups of flags that cannot be combined.
 */
import { clone, create, equals } from "@bufbuild/protobuf";
import { addProcessCondition, type ProcessFlag, processCondition } from "@periscope/flow";
import {
  type FlowFilter,
  FlowFilter_ExperimentalSchema,
  FlowFilterSchema,
  HTTPHeaderSchema,
  NetworkInterfaceSchema,
  WorkloadSchema,
} from "@periscope/proto";
import { type FlagSpec, type FlagUse, UsageError } from "./args.ts";
import {
  parseDirection,
  parseDropReason,
  parseIdentity,
  parseIpVersion,
  parseTcpFlags,
  parseType,
  parseVerdict,
  type Update,
} from "./filter-values.ts";

/** Which namespace list a namespace flag adds to. */
type NsList = "ns" | "srcNs" | "dstNs";

/** How a filter flag applies. */
interface FilterFlag {
  readonly spec: FlagSpec;
  /** Applied to both alternatives. */
  readonly both?: (value: string) => Update;
  /** Bidirectional: left gets the source form, right the destination form. */
  readonly left?: (value: string) => Update;
  readonly right?: (value: string) => Update;
  /** Namespace flags: the value (or "" for all namespaces) joins this list. */
  readonly ns?: NsList;
  /** Flags without a value (`-A`, `-4`, `--encrypted`): what the value means. */
  readonly fixed?: string;
}

const str = (name: string, help: string, short?: string): FlagSpec =>
  short ? { name, help, kind: "string", short } : { name, help, kind: "string" };
const bool = (name: string, help: string, short?: string): FlagSpec =>
  short ? { name, help, kind: "bool", short } : { name, help, kind: "bool" };

/** A `--x` / `--from-x` / `--to-x` trio over a source and a destination list. */
function trio(
  name: string,
  what: string,
  src: (f: FlowFilter, v: string) => void,
  dst: (f: FlowFilter, v: string) => void,
  short?: string,
): FilterFlag[] {
  return [
    {
      spec: str(name, `Flows from or to ${what}`, short),
      left: (v) => (f) => src(f, v),
      right: (v) => (f) => dst(f, v),
    },
    { spec: str(`from-${name}`, `Flows from ${what}`), both: (v) => (f) => src(f, v) },
    { spec: str(`to-${name}`, `Flows to ${what}`), both: (v) => (f) => dst(f, v) },
  ];
}

/** A flag adding to one list of both alternatives. */
const one = (spec: FlagSpec, update: (value: string) => Update): FilterFlag => ({
  spec,
  both: update,
});

const workload = (v: string) => {
  const slash = v.indexOf("/");
  return create(
    WorkloadSchema,
    slash < 0 ? { name: v } : { kind: v.slice(0, slash), name: v.slice(slash + 1) },
  );
};

/** Every filter flag of `observe`, with hubble's names and semantics. */
/**
 * Process flags: each becomes a CEL condition on the flow's `periscope.process.v1.Process`
 * (`_flow.extensions`), one expression per filter (values of a flag ORed, flags ANDed).
 */
const PROCESS_FLAGS: readonly (readonly [ProcessFlag, string])[] = [
  ["pid", "Flows of sockets owned by this process (or thread) id"],
  ["comm", "Flows of sockets owned by processes with this command name (e.g. curl)"],
  ["binary", "Flows of sockets owned by this executable (a path, or a name: its last element)"],
  ["container", "Flows of sockets owned by processes in this container (name or id prefix)"],
  ["container-image", 'Flows of processes in containers of this image ("nginx:*" a prefix)'],
  ["uid", "Flows of sockets owned by processes of this real uid"],
];

export const FILTER_FLAGS: readonly FilterFlag[] = [
  one(str("uuid", "The flow with this unique identifier, if any"), (v) => (f) => f.uuid.push(v)),
  one(
    str("node-name", 'Flows observed on these nodes (e.g. "k8s*", "test-cluster/*.company.com")'),
    (v) => (f) => f.nodeName.push(v),
  ),
  one(
    str("node-label", 'Flows observed on nodes matching this label selector ("key1=value1")'),
    (v) => (f) => f.nodeLabels.push(v),
  ),
  ...trio(
    "cluster",
    'endpoints in this cluster (e.g. "test-cluster", "prod-*")',
    (f, v) => f.sourceClusterName.push(v),
    (f, v) => f.destinationClusterName.push(v),
  ),
  one(
    str("protocol", 'Flows with this L4/L7 protocol (e.g. "udp", "http")'),
    (v) => (f) => f.protocol.push(v),
  ),
  one(str("tcp-flags", 'Flows with these TCP flags (e.g. "syn", "syn,ack", "fin")'), (v) => {
    const flags = parseTcpFlags(v);
    return (f) => f.tcpFlags.push(flags);
  }),
  one(
    str("type", "Events of this type TYPE[:SUBTYPE] (trace, drop, l7, trace:to-network, …)", "t"),
    (v) => parseType(v),
  ),
  one(str("verdict", "Flows with this verdict (FORWARDED, DROPPED, AUDIT, …)"), (v) => {
    const verdict = parseVerdict(v);
    return (f) => f.verdict.push(verdict);
  }),
  one(str("drop-reason-desc", 'Flows with this drop reason (e.g. "POLICY_DENIED")'), (v) => {
    const reason = parseDropReason(v);
    return (f) => f.dropReasonDesc.push(reason);
  }),
  one(
    str("http-status", 'Flows with this HTTP status code prefix (e.g. "404", "5+")'),
    (v) => (f) => f.httpStatusCode.push(v),
  ),
  one(
    str("http-method", 'Flows with this HTTP method (e.g. "get", "post")'),
    (v) => (f) => f.httpMethod.push(v),
  ),
  one(
    str("http-path", "Flows whose HTTP path matches this regular expression"),
    (v) => (f) => f.httpPath.push(v),
  ),
  one(
    str("http-url", "Flows whose HTTP URL matches this regular expression"),
    (v) => (f) => f.httpUrl.push(v),
  ),
  one(str("http-header", 'Flows with this HTTP header ("key:value")'), (v) => {
    const colon = v.indexOf(":");
    if (colon < 0) throw new UsageError(`invalid --http-header "${v}": expected name:value`);
    const header = create(HTTPHeaderSchema, { key: v.slice(0, colon), value: v.slice(colon + 1) });
    return (f) => f.httpHeader.push(header);
  }),
  one(str("trace-id", "Flows with this trace ID"), (v) => (f) => f.traceId.push(v)),
  one(str("ip-trace-id", "Flows with this IP trace ID"), (v) => {
    if (!/^\d+$/.test(v) || BigInt(v) === 0n || BigInt(v) > 0xffff_ffff_ffff_ffffn)
      throw new UsageError(`invalid --ip-trace-id "${v}": must be an integer greater than 0`);
    const id = BigInt(v);
    return (f) => f.ipTraceId.push(id);
  }),
  ...trio(
    "fqdn",
    'this fully qualified domain name (e.g. "*.cilium.io")',
    (f, v) => f.sourceFqdn.push(v),
    (f, v) => f.destinationFqdn.push(v),
  ),
  ...trio(
    "ip",
    "this IP address or CIDR range",
    (f, v) => f.sourceIp.push(v),
    (f, v) => f.destinationIp.push(v),
  ),
  one(
    str("snat-ip", "Flows SNATed to this IP address or CIDR range"),
    (v) => (f) => f.sourceIpXlated.push(v),
  ),
  { spec: bool("ipv4", "Only IPv4 flows", "4"), fixed: "v4", both: (v) => ipv(v) },
  { spec: bool("ipv6", "Only IPv6 flows", "6"), fixed: "v6", both: (v) => ipv(v) },
  one(str("ip-version", 'Flows of this IP version ("none", "v4", "v6")'), (v) => ipv(v)),
  ...trio(
    "pod",
    "this pod name prefix ([namespace/]<pod-name>; namespace default when not given)",
    (f, v) => f.sourcePod.push(v),
    (f, v) => f.destinationPod.push(v),
  ),
  { spec: str("namespace", "Flows from or to this Kubernetes namespace", "n"), ns: "ns" },
  { spec: str("from-namespace", "Flows from this Kubernetes namespace"), ns: "srcNs" },
  { spec: str("to-namespace", "Flows to this Kubernetes namespace"), ns: "dstNs" },
  {
    spec: bool("all-namespaces", "Flows in any Kubernetes namespace", "A"),
    ns: "ns",
    fixed: "",
  },
  {
    spec: bool("from-all-namespaces", "Flows from any Kubernetes namespace"),
    ns: "srcNs",
    fixed: "",
  },
  { spec: bool("to-all-namespaces", "Flows to any Kubernetes namespace"), ns: "dstNs", fixed: "" },
  ...trio(
    "label",
    'endpoints with this label selector (e.g. "key1=value1", "reserved:world")',
    (f, v) => f.sourceLabel.push(v),
    (f, v) => f.destinationLabel.push(v),
    "l",
  ),
  ...trio(
    "service",
    "the service with this name prefix ([namespace/]<svc-name>)",
    (f, v) => f.sourceService.push(v),
    (f, v) => f.destinationService.push(v),
  ),
  ...trio(
    "port",
    "this L4 port (e.g. 8080)",
    (f, v) => f.sourcePort.push(v),
    (f, v) => f.destinationPort.push(v),
  ),
  ...trio(
    "workload",
    "endpoints of this workload ([kind/]<name>)",
    (f, v) => f.sourceWorkload.push(workload(v)),
    (f, v) => f.destinationWorkload.push(workload(v)),
  ),
  ...trio(
    "identity",
    "endpoints with this security identity (number or reserved name)",
    (f, v) => f.sourceIdentity.push(parseIdentity(v)),
    (f, v) => f.destinationIdentity.push(parseIdentity(v)),
  ),
  one(str("traffic-direction", "Flows in this direction (ingress or egress)"), (v) => {
    const d = parseDirection(v);
    return (f) => f.trafficDirection.push(d);
  }),
  one(
    str("cel-expression", "Flows for which this CEL expression (on _flow) is true"),
    (v) => (f) => {
      f.experimental ??= create(FlowFilter_ExperimentalSchema);
      f.experimental.celExpression.push(v);
    },
  ),
  ...PROCESS_FLAGS.map(([name, help]) =>
    one(str(name, help), (v) => {
      try {
        processCondition(name, v);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      return (f) => addProcessCondition(f, name, v, () => create(FlowFilter_ExperimentalSchema));
    }),
  ),
  one(
    str("interface", "Flows observed at this network interface (e.g. eth0)"),
    (v) => (f) => f.interface.push(create(NetworkInterfaceSchema, { name: v })),
  ),
  {
    spec: bool("encrypted", "Only encrypted flows (WireGuard/IPsec)"),
    fixed: "true",
    both: () => (f) => f.encrypted.push(true),
  },
  {
    spec: bool("unencrypted", "Only unencrypted flows"),
    fixed: "false",
    both: () => (f) => f.encrypted.push(false),
  },
];

function ipv(v: string): Update {
  const ver = parseIpVersion(v);
  return (f) => f.ipVersion.push(ver);
}

/** `--not`: negates the filter flag that follows it. */
export const NOT_FLAG: FlagSpec = {
  name: "not",
  kind: "bool",
  help: "Reverse the next filter (blacklist), e.g. --not --from-ip 2.2.2.2",
};

/** hubble's groups of flags that exclude each other (within the whitelist or blacklist). */
const CONFLICTS: readonly (readonly string[])[] = [
  [
    "from-fqdn",
    "from-ip",
    "ip",
    "fqdn",
    "from-namespace",
    "namespace",
    "from-all-namespaces",
    "all-namespaces",
  ],
  ["from-fqdn", "from-ip", "ip", "fqdn", "from-pod", "pod"],
  [
    "to-fqdn",
    "to-ip",
    "ip",
    "fqdn",
    "to-namespace",
    "namespace",
    "to-all-namespaces",
    "all-namespaces",
  ],
  ["to-fqdn", "to-ip", "ip", "fqdn", "to-pod", "pod"],
  ["to-pod", "namespace", "all-namespaces"],
  ["from-pod", "namespace", "all-namespaces"],
  ["to-service", "namespace", "all-namespaces"],
  ["from-service", "namespace", "all-namespaces"],
  ["label", "from-label"],
  ["label", "to-label"],
  ["service", "from-service"],
  ["service", "to-service"],
  ["port", "to-port"],
  ["port", "from-port"],
  ["identity", "to-identity"],
  ["identity", "from-identity"],
  ["workload", "to-workload"],
  ["workload", "from-workload"],
  ["encrypted", "unencrypted"],
];

const namespaceOf = (name: string): string => {
  const slash = name.indexOf("/");
  return slash > 0 ? name.slice(0, slash) : "";
};

/** `ns/name` for every name without a namespace, for each namespace given. */
function withNamespaces(names: readonly string[], nss: readonly string[]): string[] {
  if (nss.length === 0 || names.length === 0) return [...names];
  return names.flatMap((n) => (n.includes("/") ? [n] : nss.map((ns) => `${ns}/${n}`)));
}

/** Hubble's filterTracker: a left and a right alternative plus namespace lists. */
class FilterTracker {
  left: FlowFilter | undefined;
  right: FlowFilter | undefined;
  readonly ns: string[] = [];
  readonly srcNs: string[] = [];
  readonly dstNs: string[] = [];
  readonly used = new Set<string>();

  apply(flag: FilterFlag, value: string): void {
    const name = flag.spec.name;
    this.used.add(name);
    for (const group of CONFLICTS) {
      if (!group.includes(name)) continue;
      const other = group.find((g) => g !== name && this.used.has(g));
      if (other) throw new UsageError(`filters --${other} and --${name} cannot be combined`);
    }
    if (flag.ns) {
      this[flag.ns].push(value);
    } else if (flag.both) {
      const update = flag.both(value);
      this.left ??= create(FlowFilterSchema);
      this.right ??= create(FlowFilterSchema);
      update(this.left);
      update(this.right);
    } else if (flag.left && flag.right) {
      const l = flag.left(value);
      const r = flag.right(value);
      this.left ??= create(FlowFilterSchema);
      this.right ??= create(FlowFilterSchema);
      l(this.left);
      r(this.right);
    }
    this.#checkNamespaces();
  }

  #checkNamespaces(): void {
    for (const f of [this.left, this.right]) {
      if (!f) continue;
      const checks: [readonly string[], readonly string[]][] = [
        [this.ns, f.sourcePod],
        [this.ns, f.sourceService],
        [this.ns, f.destinationPod],
        [this.ns, f.destinationService],
        [this.srcNs, f.sourcePod],
        [this.srcNs, f.sourceService],
        [this.dstNs, f.destinationPod],
        [this.dstNs, f.destinationService],
      ];
      for (const [nss, names] of checks) {
        for (const ns of nss) {
          for (const n of names) {
            const nn = namespaceOf(n);
            if (nn !== "" && nn !== ns)
              throw new UsageError(`namespace conflict: "${ns}" does not contain "${n}"`);
          }
        }
      }
      for (const [pods, svcs] of [
        [f.sourcePod, f.sourceService],
        [f.destinationPod, f.destinationService],
      ] as const) {
        for (const pod of pods) {
          const podNs = namespaceOf(pod);
          if (podNs === "") continue;
          for (const svc of svcs) {
            if (namespaceOf(svc) !== podNs)
              throw new UsageError(`namespace of service "${svc}" conflict with pod "${podNs}"`);
          }
        }
      }
    }
  }

  filters(): FlowFilter[] {
    if (!this.left && !this.right && this.ns.length + this.srcNs.length + this.dstNs.length === 0)
      return [];
    const left = this.left ? clone(FlowFilterSchema, this.left) : create(FlowFilterSchema);
    const right = this.right ? clone(FlowFilterSchema, this.right) : create(FlowFilterSchema);
    const src = (f: FlowFilter, nss: readonly string[]) => {
      if (f.sourcePod.length === 0 && f.sourceService.length === 0) f.sourcePod = [""];
      f.sourcePod = withNamespaces(f.sourcePod, nss);
      f.sourceService = withNamespaces(f.sourceService, nss);
    };
    const dst = (f: FlowFilter, nss: readonly string[]) => {
      if (f.destinationPod.length === 0 && f.destinationService.length === 0)
        f.destinationPod = [""];
      f.destinationPod = withNamespaces(f.destinationPod, nss);
      f.destinationService = withNamespaces(f.destinationService, nss);
    };
    if (this.dstNs.length > 0) {
      dst(left, this.dstNs);
      dst(right, this.dstNs);
    }
    if (this.srcNs.length > 0) {
      src(left, this.srcNs);
      src(right, this.srcNs);
    }
    if (this.ns.length > 0) {
      src(left, this.ns);
      dst(right, this.ns);
    }
    return equals(FlowFilterSchema, left, right) ? [left] : [left, right];
  }
}

/**
 * Turns filter flags (in order) into whitelist and blacklist like `hubble observe`:
 * `--ip X` matches X as source OR destination (two alternatives); other flags narrow both
 * alternatives; `-n ns` / `-A` prefix pod and service names (`-n ns --pod x` = `ns/x`,
 * `-A` = `/`, any namespace); `--not` sends the next filter flag to the blacklist.
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
      if (use.value !== "true") continue;
      if (negate) throw new UsageError("consecutive --not statements");
      negate = true;
      continue;
    }
    const flag = FILTER_FLAGS.find((f) => f.spec.name === use.name);
    if (!flag) continue;
    if (flag.fixed !== undefined && use.value === "false") continue;
    (negate ? black : white).apply(flag, flag.fixed ?? use.value);
    negate = false;
  }
  if (negate)
    throw new UsageError(
      "trailing --not found in the arguments (--not must be followed by a filter flag)",
    );
  return { whitelist: white.filters(), blacklist: black.filters() };
}
