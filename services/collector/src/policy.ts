/**
 * Policy enforcement on this node: watches the policies KV bucket, validates every
 * policy again (a bad one is counted, logged and ignored: the last good version of
 * that policy stays in force), compiles all good policies against the devices this
 * collector is attached to and the endpoints registry, and installs the result into
 * the trace program's policy maps when it differs from what the kernel holds. A
 * refresh timer follows devices and endpoints that come and go.
 */
import { type KernelRuleSet, PolicyMaps } from "@periscope/bpf";
import {
  type Bus,
  type EndpointRegistry,
  openEndpointRegistry,
  openPolicyStore,
  type PolicyChange,
  type PolicyWatch,
} from "@periscope/bus";
import {
  checkDistinct,
  compilePolicies,
  type Policy,
  type PolicyDevice,
  PolicyError,
  parsePolicy,
} from "@periscope/policy";
import type { Logger, Metrics } from "@periscope/telemetry";
import type { Counter, Gauge } from "prom-client";
import type { AgentEvents } from "./agent-events.ts";
import type { AttachedDevice } from "./attacher.ts";
import { parseInterfaces } from "./config.ts";
import { compilePattern } from "./patterns.ts";

/** The kernel side: `PolicyMaps` from @periscope/bpf. */
export interface PolicyKernel {
  install(rs: KernelRuleSet): number;
  clear(): number;
  revision(): number;
  close(): void;
}

/** What happened when policies were (re)applied, for agent events. */
export interface PolicyApplied {
  readonly revision: number;
  /** Kernel rules now in force. */
  readonly ruleCount: number;
  /** Policy names in force. */
  readonly policies: readonly string[];
  /** The policy whose change caused this, when one did. */
  readonly changed?: { readonly name: string; readonly deleted: boolean };
}

/** Options of {@link startPolicyEnforcer}. */
export interface PolicyEnforcerOptions {
  readonly bus: Bus;
  readonly kernel: PolicyKernel;
  /** Devices the trace program is attached to now. */
  devices(): readonly AttachedDevice[];
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Called after every install into the kernel. */
  onApplied?(applied: PolicyApplied): void;
  /** Milliseconds between re-compilations that follow devices and endpoints; default 500. */
  readonly refreshMs?: number;
}

/** A running enforcer. */
export interface PolicyEnforcer {
  /** Resolves once the policies stored at start are in the kernel. */
  readonly ready: Promise<void>;
  /** Revision in force in the kernel (0 = no policy). */
  revision(): number;
  /** Good policies in force, by name. */
  policies(): readonly Policy[];
  /** Policies refused since start. */
  rejected(): number;
  /** Stops watching; the kernel keeps the rule set in force until the program is closed. */
  stop(): Promise<void>;
}

/** Why a policy or rule set was refused, the `reason` label of policy_rejected_total. */
type RejectReason = "malformed" | "invalid" | "conflict" | "compile";

/**
 * Resolves an interface subject pattern (`[<netns>/]<ifname>`, globs as
 * `--interfaces`) to the attached devices it matches.
 */
export function matchDevices(pattern: string, devices: readonly AttachedDevice[]): PolicyDevice[] {
  const [parsed] = parseInterfaces(pattern, "interface");
  if (parsed === undefined) return [];
  const p = compilePattern(parsed);
  return devices
    .filter((d) => {
      if ((d.target.netns === undefined) !== (parsed.netns === undefined)) return false;
      if (d.target.netns !== undefined && !p.matchNetns(d.target.netns)) return false;
      return p.matchIfname(d.target.ifname, d.target.ifname === "lo");
    })
    .map((d) => ({ netnsCookie: d.netnsCookie, ifindex: d.ifindex }));
}

/**
 * Checks interface subjects with the collector's own pattern rules (stricter than the
 * policy model's shape check).
 * @throws PolicyError naming the rule and field.
 */
function checkInterfaceSubjects(policy: Policy): void {
  policy.rules.forEach((r, ruleIndex) => {
    if (r.subject.kind !== "interface") return;
    try {
      parseInterfaces(r.subject.pattern, "interface");
    } catch (err) {
      throw new PolicyError(
        { policy: policy.name, ruleIndex, rule: r.name, field: "interface" },
        err instanceof Error ? err.message : String(err),
      );
    }
  });
}

/** Starts watching the policies bucket and enforcing what it holds. */
export async function startPolicyEnforcer(opts: PolicyEnforcerOptions): Promise<PolicyEnforcer> {
  const { bus, kernel, log } = opts;
  const rejectedTotal: Counter<"reason"> = opts.metrics.counter(
    "policy_rejected_total",
    "Policies or rule sets refused: malformed = not JSON, invalid = fails validation, conflict = clashes with another policy, compile = exceeds kernel limits. The previous version stays in force.",
    ["reason"],
  );
  for (const reason of ["malformed", "invalid", "conflict", "compile"] as const) {
    rejectedTotal.inc({ reason }, 0);
  }
  const installs: Counter = opts.metrics.counter(
    "policy_installs_total",
    "Rule sets written into the kernel and switched to.",
  );
  const revisionGauge: Gauge = opts.metrics.gauge(
    "policy_revision",
    "Policy revision in force in the kernel (0 = no policy).",
  );
  const rulesGauge: Gauge = opts.metrics.gauge("policy_rules", "Kernel policy rules in force.");

  const good = new Map<string, Policy>();
  let rejected = 0;
  let lastFingerprint: string | undefined;
  let installed = false;
  let endpoints: EndpointRegistry | undefined;
  let stopped = false;

  const reject = (reason: RejectReason, name: string, message: string): void => {
    rejected++;
    rejectedTotal.inc({ reason });
    log.error(
      { policy: name, reason },
      `policy refused, previous version stays in force: ${message}`,
    );
  };

  const apply = (changed?: { name: string; deleted: boolean }): void => {
    if (stopped) return;
    const policies = [...good.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (policies.length === 0) {
      if (!installed && kernel.revision() === 0) return;
      if (lastFingerprint === "") return;
      const revision = kernel.clear();
      lastFingerprint = "";
      installed = true;
      installs.inc();
      revisionGauge.set(revision);
      rulesGauge.set(0);
      log.info({ revision }, "no policies: everything allowed");
      opts.onApplied?.({ revision, ruleCount: 0, policies: [], ...(changed ? { changed } : {}) });
      return;
    }
    let compiled: ReturnType<typeof compilePolicies>;
    try {
      const devices = opts.devices();
      compiled = compilePolicies(policies, {
        devices: (pattern) => matchDevices(pattern, devices),
        endpoints: () => (endpoints?.entries() ?? []).map((e) => ({ ip: e.ip, labels: e.labels })),
      });
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      // Only a change can push the set over the limits: undo it.
      if (changed && !changed.deleted) good.delete(changed.name);
      reject("compile", changed?.name ?? "", err.message);
      return;
    }
    if (compiled.fingerprint === lastFingerprint) return;
    const revision = kernel.install(compiled);
    lastFingerprint = compiled.fingerprint;
    installed = true;
    installs.inc();
    revisionGauge.set(revision);
    rulesGauge.set(compiled.rules.length);
    log.info(
      {
        revision,
        rules: compiled.rules.length,
        policies: policies.map((p) => p.name),
        subjects: compiled.subjects.map((s) => ({
          policy: s.policy,
          subject: s.subject.kind === "interface" ? s.subject.pattern : s.subject.selector,
          devices: s.devices,
          addresses: s.addresses,
        })),
      },
      "policy rule set installed",
    );
    opts.onApplied?.({
      revision,
      ruleCount: compiled.rules.length,
      policies: policies.map((p) => p.name),
      ...(changed ? { changed } : {}),
    });
  };

  const safeApply = (changed?: { name: string; deleted: boolean }): void => {
    try {
      apply(changed);
    } catch (err) {
      rejected++;
      rejectedTotal.inc({ reason: "compile" });
      log.error({ err }, "installing the policy rule set failed; the previous one stays in force");
    }
  };

  const onChange = (c: PolicyChange): void => {
    if (c.op === "delete") {
      if (!good.delete(c.name)) return;
      safeApply({ name: c.name, deleted: true });
      return;
    }
    if (c.op === "malformed") {
      reject("malformed", c.name, `value is not JSON: ${c.error}`);
      return;
    }
    let policy: Policy;
    try {
      policy = parsePolicy(c.value);
      if (policy.name !== c.name) {
        throw new PolicyError(
          { policy: policy.name, field: "name" },
          `stored under key "${c.name}"`,
        );
      }
      checkInterfaceSubjects(policy);
    } catch (err) {
      reject("invalid", c.name, err instanceof Error ? err.message : String(err));
      return;
    }
    try {
      checkDistinct([...[...good.values()].filter((p) => p.name !== c.name), policy]);
    } catch (err) {
      reject("conflict", c.name, err instanceof Error ? err.message : String(err));
      return;
    }
    good.set(c.name, policy);
    safeApply({ name: c.name, deleted: false });
  };

  endpoints = await openEndpointRegistry(bus);
  const store = await openPolicyStore(bus);
  const watch: PolicyWatch = await store.watch(onChange);
  const ready = Promise.all([watch.ready, endpoints.ready]).then(() => safeApply());
  const timer = setInterval(() => safeApply(), opts.refreshMs ?? 500);

  return {
    ready,
    revision: () => kernel.revision(),
    policies: () => [...good.values()],
    rejected: () => rejected,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await watch.stop();
      await endpoints?.close();
    },
  };
}

/** Parts of the collector {@link startNodePolicy} uses. */
export interface NodePolicyOptions {
  /** The trace program; without `mapFd` (test doubles) there is no policy. */
  readonly program: { mapFd?(name: string): number };
  readonly bus: Bus;
  devices(): readonly AttachedDevice[];
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly agentEvents?: Pick<AgentEvents, "policyChanged">;
}

/** The collector's policy: the enforcer plus the kernel maps it writes. */
export interface NodePolicy {
  readonly enforcer: PolicyEnforcer;
  stop(): Promise<void>;
}

/**
 * Starts enforcing the stored policies on the trace program's maps and waits (up to
 * 2 s) for the policies stored now to be in the kernel. Undefined when the program has
 * no policy maps (a test double, or an object built without policy.h).
 */
export async function startNodePolicy(o: NodePolicyOptions): Promise<NodePolicy | undefined> {
  const mapFd = o.program.mapFd?.bind(o.program);
  if (mapFd === undefined) return undefined;
  let kernel: PolicyMaps;
  try {
    kernel = new PolicyMaps(mapFd);
  } catch (err) {
    o.log.warn({ err }, "trace program has no policy maps; policies are not enforced");
    return undefined;
  }
  try {
    const enforcer = await startPolicyEnforcer({
      bus: o.bus,
      kernel,
      devices: o.devices,
      metrics: o.metrics,
      log: o.log,
      onApplied: (a) =>
        o.agentEvents?.policyChanged({
          revision: BigInt(a.revision),
          ruleCount: a.ruleCount,
          labels: a.changed ? [`policy=${a.changed.name}`] : a.policies.map((p) => `policy=${p}`),
          ...(a.changed?.deleted ? { deleted: true } : {}),
        }),
    });
    const settled = await Promise.race([enforcer.ready.then(() => true), Bun.sleep(2000)]);
    if (settled !== true)
      o.log.warn("stored policies not applied within 2 s; applying as they arrive");
    return {
      enforcer,
      async stop() {
        await enforcer.stop();
        kernel.close();
      },
    };
  } catch (err) {
    kernel.close();
    throw err;
  }
}
