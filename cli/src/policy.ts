/**
 * `periscope policy apply|list|delete`: L3/L4 policies in the `periscope-policies` KV
 * bucket, which every collector watches and enforces.
 */
import { readFile } from "node:fs/promises";
import { type Bus, openPolicyStore, type StoredPolicy } from "@periscope/bus";
import {
  checkDistinct,
  type Policy,
  PolicyError,
  parsePolicy,
  parsePolicyText,
  policyToJson,
} from "@periscope/policy";
import { type FlagSpec, lastValue, parseArgs, UsageError } from "./args.ts";
import { connectCliBus } from "./nats.ts";

/** Flags of every `policy` subcommand. */
export const POLICY_FLAGS: readonly FlagSpec[] = [
  {
    name: "file",
    short: "f",
    kind: "string",
    value: "path",
    help: "Policy file, YAML or JSON (apply)",
  },
  { name: "output", short: "o", kind: "string", value: "table|json", help: "Output of list" },
  {
    name: "nats",
    kind: "string",
    value: "url",
    help: "NATS URL (env PERISCOPE_NATS_URL, default nats://127.0.0.1:4222)",
  },
];

/** `periscope policy --help` */
export const POLICY_USAGE = `Usage: periscope policy <apply -f FILE | list [-o json] | delete NAME> [flags]

Policies allow or deny traffic of a subject (interface pattern or endpoint label
selector) by peer CIDR, protocol and port; collectors apply changes within a second.

Flags:`;

/** Where `policy` writes. */
export interface PolicyIo {
  out(line: string): void;
  err(line: string): void;
  signal: AbortSignal;
}

async function withBus<T>(natsUrl: string, io: PolicyIo, fn: (bus: Bus) => Promise<T>): Promise<T> {
  const bus = await connectCliBus("policy", natsUrl, io.signal);
  try {
    return await fn(bus);
  } finally {
    await bus.close();
  }
}

/** Stored policies that validate; the rest are reported on `err`. */
function validStored(stored: readonly StoredPolicy[], io: PolicyIo): Policy[] {
  const out: Policy[] = [];
  for (const s of stored) {
    try {
      out.push(parsePolicy(s.value));
    } catch (e) {
      io.err(
        `periscope: stored policy "${s.name}" is invalid: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  return out;
}

function ruleSummary(p: Policy): string {
  const counts = { allow: 0, deny: 0 };
  for (const r of p.rules) counts[r.action]++;
  return `${p.rules.length} (${counts.allow} allow, ${counts.deny} deny)`;
}

/** Runs `policy <subcommand>`; returns the exit code (1 for refused input or NATS trouble). */
export async function runPolicy(
  argv: readonly string[],
  natsDefault: string,
  io: PolicyIo,
): Promise<number> {
  const args = parseArgs(argv, POLICY_FLAGS);
  const [sub, ...pos] = args.positionals;
  const natsUrl = lastValue(args, "nats") ?? natsDefault;
  const fail = (msg: string): number => {
    io.err(`periscope: policy ${sub ?? ""}: ${msg}`);
    return 1;
  };
  try {
    switch (sub) {
      case "apply": {
        const file = lastValue(args, "file");
        if (file === undefined) throw new UsageError("policy apply needs -f <file>");
        if (pos.length > 0) throw new UsageError(`unexpected argument "${pos[0]}"`);
        let policies: Policy[];
        try {
          policies = parsePolicyText(await readFile(file, "utf8"));
        } catch (e) {
          if (e instanceof PolicyError) return fail(`${file}: ${e.message}`);
          return fail(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
        }
        return await withBus(natsUrl, io, async (bus) => {
          const store = await openPolicyStore(bus);
          const names = new Set(policies.map((p) => p.name));
          const others = validStored(await store.list(), io).filter((p) => !names.has(p.name));
          try {
            checkDistinct([...others, ...policies]);
          } catch (e) {
            if (e instanceof PolicyError) return fail(`${file}: ${e.message}`);
            throw e;
          }
          for (const p of policies) {
            const revision = await store.put(p.name, policyToJson(p));
            io.out(
              `policy "${p.name}" applied: mode ${p.mode}, rules ${ruleSummary(p)}, revision ${revision}`,
            );
          }
          return 0;
        });
      }
      case "list": {
        if (pos.length > 0) throw new UsageError(`unexpected argument "${pos[0]}"`);
        const output = lastValue(args, "output") ?? "table";
        if (output !== "table" && output !== "json") {
          throw new UsageError(`invalid output "${output}" (expected table or json)`);
        }
        return await withBus(natsUrl, io, async (bus) => {
          const stored = await (await openPolicyStore(bus)).list();
          if (output === "json") {
            io.out(
              JSON.stringify(
                stored.map((s) => s.value),
                null,
                2,
              ),
            );
            return 0;
          }
          const rows = stored.map((s) => {
            try {
              const p = parsePolicy(s.value);
              return [p.name, p.mode, ruleSummary(p), String(s.revision)];
            } catch {
              return [s.name, "INVALID", "-", String(s.revision)];
            }
          });
          const table = [["NAME", "MODE", "RULES", "REVISION"], ...rows];
          const widths = [0, 1, 2].map(
            (i) => Math.max(...table.map((r) => (r[i] ?? "").length)) + 3,
          );
          for (const r of table) {
            io.out(r.map((c, i) => (i < 3 ? c.padEnd(widths[i] ?? 0) : c)).join(""));
          }
          return 0;
        });
      }
      case "delete": {
        const [name, extra] = pos;
        if (name === undefined) throw new UsageError("policy delete needs a policy name");
        if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
        return await withBus(natsUrl, io, async (bus) => {
          if (!(await (await openPolicyStore(bus)).delete(name))) {
            return fail(`no policy named "${name}"`);
          }
          io.out(`policy "${name}" deleted`);
          return 0;
        });
      }
      case undefined:
        throw new UsageError("policy needs a subcommand: apply, list or delete");
      default:
        throw new UsageError(`unknown policy subcommand "${sub}" (expected apply, list or delete)`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (io.signal.aborted) return 1;
    return fail(e instanceof Error ? e.message : String(e));
  }
}
