import { type KV, type KvEntry, KvWatchInclude } from "@nats-io/kv";
import type { Bus } from "./connect.ts";
import { BusInputError } from "./errors.ts";

/** KV bucket holding one entry per policy, keyed by policy name, value = the policy as JSON. */
export const POLICIES_BUCKET = "periscope-policies";

/** Policy names are KV keys: letters, digits, `-`, `_`, `.`; 1..63 characters. */
const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** One stored policy, not yet validated (the policy model lives in @periscope/policy). */
export interface StoredPolicy {
  readonly name: string;
  /** The parsed JSON value. */
  readonly value: unknown;
  /** KV revision of the entry. */
  readonly revision: number;
}

/** A change seen by {@link PolicyStore.watch}. */
export type PolicyChange =
  | {
      readonly op: "put";
      readonly name: string;
      readonly value: unknown;
      readonly revision: number;
    }
  | { readonly op: "delete"; readonly name: string; readonly revision: number }
  /** A value that is not JSON: the writer bypassed the CLI. */
  | {
      readonly op: "malformed";
      readonly name: string;
      readonly error: string;
      readonly revision: number;
    };

/** A running watch of the policies bucket. */
export interface PolicyWatch {
  /** Resolves once the entries present when the watch started were delivered. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

/** The policies bucket. */
export interface PolicyStore {
  /** Stores (or replaces) a policy under `name`; returns the entry's revision. */
  put(name: string, value: unknown): Promise<number>;
  /** Removes the policy `name`; false when there was none. */
  delete(name: string): Promise<boolean>;
  /** Every stored policy, by name. Entries that are not JSON are returned with `value` undefined. */
  list(): Promise<StoredPolicy[]>;
  /** Calls `onChange` for every entry present, then for every later change. */
  watch(onChange: (change: PolicyChange) => void): Promise<PolicyWatch>;
}

function checkName(name: string): string {
  if (!KEY.test(name)) {
    throw new BusInputError(`policy name "${name}" must match ${KEY.source}`);
  }
  return name;
}

function decode(e: KvEntry): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(e.string()) as unknown };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/** Opens (creating if missing, history 1) the {@link POLICIES_BUCKET} bucket. */
export async function openPolicyStore(bus: Bus): Promise<PolicyStore> {
  const kv: KV = await bus.kvm().create(POLICIES_BUCKET, { history: 1 });
  return {
    async put(name, value) {
      return kv.put(checkName(name), JSON.stringify(value));
    },
    async delete(name) {
      const e = await kv.get(checkName(name));
      if (e === null || e.operation !== "PUT") return false;
      await kv.delete(name);
      return true;
    },
    async list() {
      const out: StoredPolicy[] = [];
      const keys = await kv.keys();
      for await (const key of keys) {
        const e = await kv.get(key);
        if (e === null || e.operation !== "PUT") continue;
        const d = decode(e);
        out.push({ name: key, value: "value" in d ? d.value : undefined, revision: e.revision });
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    },
    async watch(onChange) {
      const status = await kv.status();
      const lastSeq = status.streamInfo.state.last_seq;
      const ready = Promise.withResolvers<void>();
      if (status.streamInfo.state.messages === 0) ready.resolve();
      const w = await kv.watch({ include: KvWatchInclude.LastValue });
      const pump = (async () => {
        for await (const e of w) {
          if (e.operation === "PUT") {
            const d = decode(e);
            onChange(
              "value" in d
                ? { op: "put", name: e.key, value: d.value, revision: e.revision }
                : { op: "malformed", name: e.key, error: d.error, revision: e.revision },
            );
          } else {
            onChange({ op: "delete", name: e.key, revision: e.revision });
          }
          if (e.isUpdate || e.revision >= lastSeq) ready.resolve();
        }
      })().catch((err: unknown) => {
        bus.log.error({ err }, "policy watch ended with an error");
      });
      return {
        ready: ready.promise,
        async stop() {
          w.stop();
          await pump;
        },
      };
    },
  };
}

/** Which policy and rule a rule id belongs to. */
export interface PolicyRuleName {
  readonly policy: string;
  readonly rule: string;
}

/** Rule ids of the stored policies, for naming the rule behind a verdict. */
export interface PolicyRuleNames {
  /** Resolves once the policies stored when it opened are loaded. */
  readonly ready: Promise<void>;
  lookup(id: number): PolicyRuleName | undefined;
  close(): Promise<void>;
}

/** `{ id, name }` of every rule of a stored policy value; malformed parts are skipped. */
function ruleNames(value: unknown): { id: number; name: string }[] {
  const rules = (value as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules)) return [];
  return rules.flatMap((r: unknown) => {
    const { id, name } = (r ?? {}) as { id?: unknown; name?: unknown };
    return typeof id === "number" && typeof name === "string" ? [{ id, name }] : [];
  });
}

/**
 * Watches the policies bucket and keeps rule id → (policy, rule name). Values are read
 * as stored, without validation (the collectors validate): ids are unique over valid
 * policies, so a lookup names the rule that decided.
 */
export async function openPolicyRuleNames(bus: Bus): Promise<PolicyRuleNames> {
  const byPolicy = new Map<string, { id: number; name: string }[]>();
  const byId = new Map<number, PolicyRuleName>();
  const rebuild = (): void => {
    byId.clear();
    for (const [policy, rules] of byPolicy) {
      for (const r of rules) byId.set(r.id, { policy, rule: r.name });
    }
  };
  const w = await (await openPolicyStore(bus)).watch((c) => {
    if (c.op === "put") byPolicy.set(c.name, ruleNames(c.value));
    else byPolicy.delete(c.name);
    rebuild();
  });
  return { ready: w.ready, lookup: (id) => byId.get(id), close: () => w.stop() };
}
