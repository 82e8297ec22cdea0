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
import { type LocalNats, startLocalNats, waitFor } from "@periscope/devstack";
import { FlowFilterSchema } from "@periscope/proto";
import { type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "faults-node";
/** One ping every 5 ms; each makes 4 records (request and reply, each seen on both pods' eth0). */
const PING_INTERVAL_S = "0.005";

let stack: Stack;
/** Brokers started again after a kill (the harness stops only the first). */
const restartedBrokers: LocalNats[] = [];
const broker = (): LocalNats => restartedBrokers.at(-1) ?? stack.nats;

/**
 * Kills the broker (SIGKILL), waits `downMs`, runs `whileDown`, then starts the broker again
 * on the same port and store.
 */
async function killBroker(downMs: number, whileDown: () => Promise<void>): Promise<void> {
  const { pid, port, storeDir } = broker();
  process.kill(pid, "SIGKILL");
  await Bun.sleep(downMs); // the broker stays down on purpose
  await whileDown();
  restartedBrokers.push(await startLocalNats({ port, storeDir }));
}

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
  return { produced: read + kernel, ...(await observed()) };
}

/** Flows the observer has seen and records its stored LostEvents count. */
async function observed(): Promise<Omit<Totals, "produced">> {
  const status = await stack.client.serverStatus({});
  let lost = 0;
  // A filter no flow matches: GetFlows then returns only the stored LostEvents.
  const none = create(FlowFilterSchema, { sourceIp: ["192.0.2.255"] });
  for await (const r of stack.client.getFlows({ first: true, whitelist: [none] })) {
    if (r.responseTypes.case === "lostEvents") lost += Number(r.responseTypes.value.numEventsLost);
  }
  return { flows: Number(status.seenFlows), lost };
}

/**
 * Waits until at least `min` records were produced and every one is accounted for, twice
 * in a row with nothing new (a collector starved of CPU may not have counted its last
 * reads yet); returns the totals. `base`: observer totals that predate the collector's
 * counters (after a collector restart).
 */
async function accounted(
  what: string,
  min: number,
  base: Omit<Totals, "produced"> = { flows: 0, lost: 0 },
): Promise<Totals> {
  let last: Totals | undefined;
  let previous: Totals | undefined;
  const t0 = performance.now();
  try {
    await waitFor(
      async () => {
        previous = last;
        last = await totals();
        const { produced, flows, lost } = last;
        const balanced = produced >= min && flows - base.flows + lost - base.lost === produced;
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

/**
 * Records the collector must at least have read for `count` pings of which `received`
 * were answered: an answered ping is seen four times (request and reply, each on both
 * pods' eth0), an unanswered one at least once (the request leaving the frontend). A
 * ping the kernel itself drops (e.g. a full backlog queue on a loaded machine) is not
 * Periscope's loss, so the exact check is flows + counted lost = records read.
 */
function minRecords(count: number, received: number): number {
  return 4 * received + (count - received);
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
  try {
    await stack?.stop();
  } finally {
    for (const b of restartedBrokers) await b.stop();
  }
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
    const received = await traffic;
    expect(received).toBeGreaterThan(PINGS * 0.95);
    const after = await accounted(
      "enricher restart",
      before.produced + minRecords(PINGS, received),
    );
    report("enricher kill -9", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(minRecords(PINGS, received));
  }, 120_000);

  test("faults - nats-server killed (SIGKILL) for 7 s and restarted on the same store loses nothing uncounted", async () => {
    const PINGS = 2400; // 12 s: before, during and after the 7 s outage
    const before = await totals();
    const traffic = pings(PINGS);
    await flowsFlowing();
    const enricherOps = `http://127.0.0.1:${stack.ops["enricher-0"]}/readyz`;
    let stalled = 0;
    await killBroker(7000, async () => {
      await waitFor(async () => (await fetch(enricherOps)).status === 503, {
        what: "enricher not ready while the broker is down",
      });
      stalled = await flowsReceived();
    });
    const recovery = await recoveryMs(stalled);
    await waitFor(enricherOps, { what: "enricher ready again" });
    const received = await traffic;
    expect(received).toBeGreaterThan(PINGS * 0.95);
    const after = await accounted("broker restart", before.produced + minRecords(PINGS, received));
    report("nats-server kill -9, 7 s", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(minRecords(PINGS, received));
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
    const received = await traffic;
    expect(received).toBeGreaterThan(PINGS * 0.95);
    const after = await accounted("observer resume", before.produced + minRecords(PINGS, received));
    report("observer SIGSTOP 12 s", recovery, before, after);
    expect(after.flows + after.lost).toBe(after.produced);
    expect(after.produced - before.produced).toBeGreaterThanOrEqual(minRecords(PINGS, received));
  }, 120_000);
  test("faults - frames that overflow a small publish queue while the broker is down are counted lost", async () => {
    const collector = `collector-${NODE}`;
    await stack.sup.stopOne(collector);
    // Everything the stopped collector sent is in; the new one counts from zero.
    let base = await observed();
    await waitFor(
      async () => {
        const now = await observed();
        const same = now.flows === base.flows && now.lost === base.lost;
        base = now;
        return same;
      },
      { intervalMs: 1000, timeoutMs: 30_000, what: "observer totals settled" },
    );
    stack.restart(collector, { PERISCOPE_PUBLISH_QUEUE_FRAMES: "16" });
    await waitFor(`http://127.0.0.1:${stack.ops[collector]}/readyz`, {
      timeoutMs: 30_000,
      what: "collector ready with a 16-frame queue",
    });
    const PINGS = 1600; // 8 s: before, during and after the 4 s outage
    const traffic = pings(PINGS);
    await flowsFlowing();
    await killBroker(4000, async () => {});
    const received = await traffic;
    expect(received).toBeGreaterThan(PINGS * 0.95);
    const after = await accounted("small queue", minRecords(PINGS, received), base);
    const queueLost = await stack.metric(collector, "periscope_collector_events_lost_total", {
      where: "queue",
    });
    const kernelLost = await stack.metric(collector, "periscope_collector_events_lost_total", {
      where: "kernel",
    });
    console.log(
      `[transport-faults] 16-frame queue, broker down 4 s: produced ${after.produced}, delivered ${after.flows - base.flows}, counted lost ${after.lost - base.lost} (collector queue ${queueLost})`,
    );
    expect(queueLost).toBeGreaterThan(0);
    expect(after.lost - base.lost).toBe(queueLost + kernelLost);
    expect(after.flows - base.flows + after.lost - base.lost).toBe(after.produced);
  }, 120_000);
});
