/**
 * Fails (exit 1) when the test suite left anything behind: network
 * namespaces or host devices with the test prefix, tc filters or BPF programs of ours,
 * or service/nats-server processes started by tests. Whatever it finds is
 * reported and then removed, so one failing run does not poison the next.
 */
import { readdirSync, readFileSync } from "node:fs";
import { TEST_NETNS_PREFIX } from "@periscope/testing";

const OUR_PROGRAMS = new Set([
  "trace_ingress",
  "trace_egress",
  "capture_ingress",
  "capture_egress",
  "drop_kfree_skb",
  // bpf/proc.bpf.c (names longer than 15 bytes also as the kernel truncates them)
  "proc_exec",
  "proc_fork",
  "proc_exit",
  "sock_tcp_ops",
  "sock_udp_create",
  "sock_udp_release",
  "sock_udp_releas",
  "sock_udp_egress",
  "sock_udp_ingress",
  "sock_udp_ingres",
]);

function run(argv: string[]): string {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return p.stdout.toString();
}

const problems: string[] = [];

for (const line of run(["ip", "netns", "list"]).split("\n")) {
  const name = line.split(" ")[0] ?? "";
  if (name.startsWith(TEST_NETNS_PREFIX)) {
    problems.push(`network namespace ${name}`);
    run(["ip", "netns", "delete", name]);
  }
}

interface LinkInfo {
  ifname: string;
}
const links = JSON.parse(run(["ip", "-j", "link", "show"]) || "[]") as LinkInfo[];
for (const l of links) {
  if (l.ifname.startsWith(TEST_NETNS_PREFIX)) {
    problems.push(`host network device ${l.ifname}`);
    run(["ip", "link", "delete", l.ifname]);
  }
}

interface ProgInfo {
  id: number;
  name?: string;
}
const progs = JSON.parse(run(["bpftool", "-j", "prog", "show"]) || "[]") as ProgInfo[];
for (const p of progs) {
  if (p.name && OUR_PROGRAMS.has(p.name)) problems.push(`BPF program ${p.name} (id ${p.id})`);
}

for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
  if (Number(pid) === process.pid) continue;
  let cmd: string;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    continue; // exited while we looked
  }
  const testNats = cmd.startsWith("nats-server") && /-sd \/tmp\//.test(cmd);
  const testService = /services\/(collector|enricher|observer|recorder)\/src\/main\.ts/.test(cmd);
  if (testNats || testService) {
    problems.push(`process ${pid}: ${cmd}`);
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}

if (problems.length > 0) {
  console.error(`left behind by the tests (now removed):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log("nothing left behind");
