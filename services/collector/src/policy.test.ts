import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { netnsCookie, PolicyMaps, TraceProgram } from "@periscope/bpf";
import { type Bus, connectBus, openPolicyStore, type PolicyStore } from "@periscope/bus";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { ethernet, ipv4, type LocalNats, startLocalNats, tcp, waitFor } from "@periscope/testing";
import type { AttachedDevice } from "./attacher.ts";
import { matchDevices, type PolicyEnforcer, startPolicyEnforcer } from "./policy.ts";

const isRoot = process.getuid?.() === 0;
const TC_ACT_SHOT = 2;
const TC_ACT_UNSPEC = -1;

function device(name: string, netns: string | undefined, ifindex: number): AttachedDevice {
  return {
    name: netns === undefined ? name : `${netns}/${name}`,
    target: netns === undefined ? { ifname: name } : { ifname: name, netns },
    ifindex,
    netnsCookie: BigInt(ifindex * 100),
  };
}

test("collector policy - interface subjects match attached devices like --interfaces", () => {
  const devices = [
    device("pscope-a", undefined, 3),
    device("pscope-b", undefined, 4),
    device("eth0", "pod-web", 2),
    device("eth0", "pod-db", 5),
    device("lo", undefined, 1),
  ];
  const ids = (pattern: string) => matchDevices(pattern, devices).map((d) => d.ifindex);
  expect(ids("pscope-*")).toEqual([3, 4]);
  expect(ids("pod-*/eth0")).toEqual([2, 5]);
  expect(ids("pod-web/eth0")).toEqual([2]);
  expect(ids("eth0")).toEqual([]); // own namespace only
  expect(ids("*")).toEqual([3, 4]); // loopback only by its name
  expect(ids("lo")).toEqual([1]);
});

describe.skipIf(!isRoot)("collector policy enforcer (real nats-server and kernel maps)", () => {
  let nats: LocalNats;
  let bus: Bus;
  let store: PolicyStore;
  let prog: TraceProgram;
  let maps: PolicyMaps;
  let enforcer: PolicyEnforcer;
  const metrics = createMetrics("collector");
  const syn = (sport: number) =>
    ethernet(
      { etherType: 0x0800 },
      ipv4({ src: "10.6.0.1", dst: "10.7.0.2", protocol: 6 }, tcp(sport, 80, ["SYN"])),
    );
  const rule = (id: number, name: string, extra: Record<string, unknown> = {}) => ({
    id,
    name,
    action: "deny",
    direction: "ingress",
    interface: "lo",
    protocol: "tcp",
    ports: "80",
    ...extra,
  });
  const rejected = async (reason: string) =>
    (
      await metrics.registry.getSingleMetric("periscope_collector_policy_rejected_total")?.get()
    )?.values.find((v) => v.labels.reason === reason)?.value ?? 0;

  beforeAll(async () => {
    const log = createLogger("collector-policy-test", "silent");
    nats = await startLocalNats({ log });
    bus = await connectBus({ url: nats.url, name: "policy-test", log });
    store = await openPolicyStore(bus);
    prog = TraceProgram.load({ ringBufferBytes: 1 << 16 });
    maps = new PolicyMaps((n) => prog.mapFd(n));
    // BPF_PROG_TEST_RUN runs on this namespace's loopback: make it an attached device.
    const lo: AttachedDevice = {
      name: "lo",
      target: { ifname: "lo" },
      ifindex: 1,
      netnsCookie: netnsCookie(undefined),
    };
    enforcer = await startPolicyEnforcer({
      bus,
      kernel: maps,
      devices: () => [lo],
      metrics,
      log,
      refreshMs: 100,
    });
    await enforcer.ready;
  }, 30_000);

  afterAll(async () => {
    await enforcer?.stop();
    maps?.close();
    prog?.close();
    await bus?.close();
    await nats?.stop();
  });

  test("collector policy - a stored policy is enforced; bad and clashing versions are refused; delete clears", async () => {
    expect(enforcer.revision()).toBe(0);
    expect(prog.testRun(syn(1000), 1, "ingress").retval).toBe(TC_ACT_UNSPEC);

    const t0 = performance.now();
    await store.put("p1", { name: "p1", rules: [rule(1, "no-http")] });
    await waitFor(() => enforcer.revision() === 1, { timeoutMs: 1000, intervalMs: 5 });
    const appliedMs = performance.now() - t0;
    expect(appliedMs).toBeLessThan(1000);
    console.log(`policy stored -> in the kernel: ${appliedMs.toFixed(1)} ms`);
    expect(prog.testRun(syn(1001), 1, "ingress").retval).toBe(TC_ACT_SHOT);
    expect(prog.testRun(syn(1002), 1, "egress").retval).toBe(TC_ACT_UNSPEC);

    // Not valid: refused, the last good version stays in force.
    await store.put("p1", { name: "p1", rules: [rule(1, "no-http", { ports: "99999" })] });
    await waitFor(async () => (await rejected("invalid")) === 1, { timeoutMs: 2000 });
    expect(enforcer.revision()).toBe(1);
    expect(prog.testRun(syn(1003), 1, "ingress").retval).toBe(TC_ACT_SHOT);

    // Another policy reusing rule id 1: refused as a conflict.
    await store.put("p2", { name: "p2", rules: [rule(1, "dup")] });
    await waitFor(async () => (await rejected("conflict")) === 1, { timeoutMs: 2000 });
    expect(enforcer.policies().map((p) => p.name)).toEqual(["p1"]);

    // Not JSON at all (written past the CLI).
    const kv = await bus.kvm().open("periscope-policies");
    await kv.put("p3", "{not json");
    await waitFor(async () => (await rejected("malformed")) === 1, { timeoutMs: 2000 });
    expect(enforcer.revision()).toBe(1);

    await store.delete("p1");
    await waitFor(() => enforcer.revision() === 2, { timeoutMs: 1000, intervalMs: 5 });
    expect(prog.testRun(syn(1004), 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
    expect(enforcer.rejected()).toBe(3);
  }, 30_000);
});
