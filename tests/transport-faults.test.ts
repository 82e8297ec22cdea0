/**
 * Transport faults with real parts: real pings between netns pods, the services as
 * processes, a real nats-server with JetStream on disk. After each fault (an enricher
 * killed with SIGKILL and restarted, the broker killed with SIGKILL and restarted on the
 * same port and store, the observer stopped for 12 s) every record the collector read
 * must be a flow in the observer or counted in a LostEvent:
 *
 *   flows seen by the observer + LostEvents in GetFlows == records read + kernel loss
 *
 * Each test prints its recovery time (fault end → flows arriving again) and loss count.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { type LocalNats, startLocalNats } from "@periscope/bus";
import { waitFor } from "@periscope/devstack";
import { FlowFilterSchema } from "@periscope/proto";
import { type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "faults-node";
/** One ping every 5 ms; each makes 4 records (request and reply, each seen on both pods' eth0). */
const PING_INTERVAL_S = "0.005";

let stack: Stack;
/** The broker started again after the kill, if any (the harness stops only the first). */
let restartedNats: LocalNats | undefined;

interface Totals {
  /** Records the collector read from the kernel plus the ones the kernel lost. */
  produced: number;
  flows: number;
  lost: number;
}

async function totals(): Promise<Totals> {
  const read = await stack.metric(`collector-${NODE}`, "periscope_collector_events_read_total");
  const kernel = await stack.metric(`collector-${NODE}`, "periscope_collector_events_lost_total", {
    where: "kernel",
  });
  const status = await stack.client.serverStatus({});
  let lost = 0;
  // A filter no flow matches: GetFlows then returns only the stored LostEvents.
  const none = create(FlowFilterSchema, { sourceIp: ["192.0.2.255"] });
  for await (const r of stack.client.getFlows({ first: true, whitelist: [none] })) {
    if (r.responseTypes.case === "lostEvents") lost += Number(r.responseTypes.value.numEventsLost);
  }
  return { produced: read + kernel, flows: Number(status.seenFlows), lost };
}

/**
 * Waits until at least `min` records were produced and every one is accounted for, twice
 * in a row with nothing new (a collector starved of CPU may not have counted its last
 * reads yet); returns the totals.
 */
async function accounted(what: string, min: number): Promise<Totals> {
  let last: Totals | undefined;
  let previous: Totals | undefined;
  const t0 = performance.now();
  try {
    await waitFor(
      async () => {
        previous = last;
        last = await totals();
        const balanced = last.produced >= min && last.flows + last.lost === last.produced;
        return balanced && previous?.produced === last.produced;
      },
      { timeoutMs: 60_000, intervalMs: 500, what },
    );
  } catch (err) {
    throw new Error(`${what}: not accounted, last totals ${JSON.stringify(last)}`, { cause: err });
  }
  console.log(
    `[transport-faults] ${what}: all accounted ${Math.round(performance.now() - t0)} ms after the traffic ended`,
  );
  return last as Totals;
}

const flowsReceived = (): Promise<number> =>
  stack.metric("observer", "periscope_observer_flows_received_total");

/** ms from now until the observer has received more than `before` flows. */
async function recoveryMs(before: number): Promise<number> {
  const t0 = performance.now();
  await waitFor(async () => (await flowsReceived()) > before, {
    timeoutMs: 60_000,
    intervalMs: 20,
    what: "flows arriving again",
  });
  return Math.round(performance.now() - t0);
}

/** Pings backend from frontend `count` times; resolves with the count of replies. */
function pings(count: number): Promise<number> {
  const backend = stack.topology.pod("backend").ipv4;
  return stack.topology
    .exec("frontend", ["ping", "-q", "-n", "-i", PING_INTERVAL_S, "-c", String(count), backend], {
      timeoutMs: 120_000,
    })
    .then((r) => Number(/(\d+) received/.exec(r.stdout)?.[1] ?? -1));
}

async function flowsFlowing(): Promise<void> {
  const before = await flowsReceived();
  await waitFor(async () => (await flowsReceived()) > before + 50, {
    timeoutMs: 20_000,
    what: "flows flowing before the fault",
  });
}

function report(name: string, recovery: number, before: Totals, after: Totals): void {
  const lost = after.lost - before.lost;
  const produced = after.produced - before.produced;
  console.log(
    `[transport-faults] ${name}: recovery ${recovery} ms; produced ${produced}, delivered ${after.flows - before.flows}, counted lost ${lost}`,
  );
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "frontend" }, { name: "backend" }],
    nodes: [{ name: NODE, pods: ["frontend", "backend"] }],
    env: { observer: { PERISCOPE_MAX_FLOWS: "200000" } },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await restartedNats?.stop();
}, 60_000);

describe("transport faults", () => {
  test("faults - an enricher killed (SIGKILL) mid-traffic and restarted loses nothing uncounted", async () => {
    const PINGS = 1600; // 8 s: before, during and after the 3 s outage
    const before = await totals();
    const traffic = pings(PINGS);
    await flowsFlowing();
    const enricher = stack.sup.get("enricher-0");
    expect(enricher).toBeDefined();
    enricher?.kill("SIGKILL");
    await enricher?.exited;
    await waitFor(
      async () =>
        !(await fetch(`http://127.0.0.1:${stack.ops["enricher-0"]}/readyz`).catch(() => undefined))
          ?.ok,
      { what: "enricher gone" },
    );
    await Bun.sleep(3000); // the enricher stays dead for 3 s while the pings go on
    const stalled = await flowsReceived();
    const restartedAt = performance.now();
    stack.restart("enricher-0");
    await waitFor(`http://127.0.0.1:${stack.ops["enricher-0"]}/readyz`, {
      timeoutMs: 30_000,
      what: "restarted enricher ready",
    });
    const readyMs = Math.round(performance.now() - restartedAt);
    const recovery = readyMs + (await recoveryMs(stalled));
    console.log(`[transport-faults] enricher restart → ready ${readyMs} ms`);
    expect(await traffic).toBe(PINGS);
    const after = await accounted("enricher restart", before.produced + 4 * PINGS);
    report("enricher kill -9", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(4 * PINGS);
  }, 120_000);

  test("faults - nats-server killed (SIGKILL) for 7 s and restarted on the same store loses nothing uncounted", async () => {
    const PINGS = 2400; // 12 s: before, during and after the 7 s outage
    const before = await totals();
    const traffic = pings(PINGS);
    await flowsFlowing();
    const { pid, port, storeDir } = stack.nats;
    const enricherOps = `http://127.0.0.1:${stack.ops["enricher-0"]}/readyz`;
    process.kill(pid, "SIGKILL");
    await waitFor(async () => (await fetch(enricherOps)).status === 503, {
      what: "enricher not ready while the broker is down",
    });
    await Bun.sleep(7000); // the broker stays down for 7 s
    const stalled = await flowsReceived();
    restartedNats = await startLocalNats({ port, storeDir });
    const recovery = await recoveryMs(stalled);
    await waitFor(enricherOps, { what: "enricher ready again" });
    expect(await traffic).toBe(PINGS);
    const after = await accounted("broker restart", before.produced + 4 * PINGS);
    report("nats-server kill -9, 7 s", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(4 * PINGS);
  }, 120_000);

  test("faults - the observer stopped (SIGSTOP) 12 s under traffic resumes without uncounted loss", async () => {
    const PINGS = 3000; // 15 s: before, during and after the 12 s stop
    const before = await totals();
    const traffic = pings(PINGS);
    await flowsFlowing();
    const observer = stack.sup.get("observer");
    const stalled = await flowsReceived();
    observer?.kill("SIGSTOP");
    await Bun.sleep(12_000); // stopped for 12 s while the pings go on
    observer?.kill("SIGCONT");
    const recovery = await recoveryMs(stalled);
    expect(await traffic).toBe(PINGS);
    const after = await accounted("observer resume", before.produced + 4 * PINGS);
    report("observer SIGSTOP 12 s", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(4 * PINGS);
  }, 120_000);
});
