import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { runCli } from "./main.ts";

let dir: string;
let nats: LocalNats;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-cli-policy-"));
  nats = await startLocalNats();
});

afterAll(async () => {
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    signal: new AbortController().signal,
    server: "127.0.0.1:1",
    natsUrl: nats.url,
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function file(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

test.each([
  [["policy"], "policy needs a subcommand"],
  [["policy", "apply"], "policy apply needs -f <file>"],
  [["policy", "delete"], "policy delete needs a policy name"],
  [["policy", "list", "-o", "yaml"], 'invalid output "yaml"'],
  [["policy", "frobnicate"], 'unknown policy subcommand "frobnicate"'],
])("cli policy - %p is a usage error", async (argv, message) => {
  const r = await cli(...argv);
  expect(r.code).toBe(2);
  expect(r.err).toContain(message);
});

test("cli policy - a malformed file is refused naming the rule and field; nothing is stored", async () => {
  const bad = file(
    "bad.yaml",
    "name: p\nrules:\n  - {id: 1, name: ok, action: allow, direction: ingress, interface: eth0}\n  - {id: 2, name: two, action: allow, direction: sideways, interface: eth0}\n",
  );
  const r = await cli("policy", "apply", "-f", bad);
  expect(r.code).toBe(1);
  expect(r.err).toBe(
    `periscope: policy apply: ${bad}: policy "p", rule 2 ("two"), field "direction": must be one of ingress, egress, got "sideways"`,
  );
  expect((await cli("policy", "list", "-o", "json")).out).toBe("[]");
});

test("cli policy - apply, list, a rule id clash with a stored policy, delete", async () => {
  const one = file(
    "one.json",
    JSON.stringify({
      name: "one",
      mode: "audit",
      rules: [{ id: 7, name: "r", action: "deny", direction: "egress", endpoint: "app=db" }],
    }),
  );
  const applied = await cli("policy", "apply", "-f", one);
  expect(applied.code).toBe(0);
  expect(applied.out).toMatch(
    /^policy "one" applied: mode audit, rules 1 \(0 allow, 1 deny\), revision \d+$/,
  );
  const clash = file(
    "clash.yaml",
    "name: two\nrules:\n  - {id: 7, name: s, action: allow, direction: ingress, interface: eth0}\n",
  );
  const refused = await cli("policy", "apply", "-f", clash);
  expect(refused.code).toBe(1);
  expect(refused.err).toContain(
    'policy "two", rule 1 ("s"), field "id": id 7 is also used by policy "one" rule "r"',
  );
  const list = await cli("policy", "list");
  expect(list.out.split("\n").map((l) => l.split(/\s{2,}/)[0])).toEqual(["NAME", "one"]);
  expect((await cli("policy", "delete", "one")).out).toBe('policy "one" deleted');
  expect((await cli("policy", "delete", "one")).code).toBe(1);
});
