/**
 * Web UI responsiveness bench: the observer (services/observer/src/main.ts) as a child
 * process, a real nats-server, this process publishing synthetic FlowBatches (pods in
 * three namespaces, TCP/UDP edges, some drops with kernel reasons) at a fixed rate, and
 * the UI page the observer serves open in headless Chromium (tests/ui/browser.ts),
 * following live. Measured in the page, per phase (idle before any flow, then each rate
 * for {@link PHASE_MS} after a 2 s warm-up at 1,000 flows/s):
 * - `frame_p50/p99/max`: requestAnimationFrame deltas, ms (16.7 = every frame drawn);
 * - `longtasks` and `longtask_ms_per_s`: PerformanceObserver "longtask" entries (> 50 ms);
 * - `lag_p50/p99`: event-loop lag, how late a 20 ms timer fires, ms;
 * - `published`, `flows_shown_p50`: flows/s sent, and the flows/s the page's status bar
 *   reports, read in the page each second, p50 from the 6th second on (the bar averages the
 *   last 5 s); `shown_ratio` = the second over the first;
 * - `lost_shown` and `lost_shown.<where>`: lost events the status bar shows at the phase's
 *   end, in all and by where they were lost; `observer_lost.<where>`: the observer's own
 *   `periscope_observer_events_lost_total` grown over the phase, to compare;
 * - `observer_received`: flows/s the observer took in from the bus over the phase (does the
 *   observer keep up, apart from the page?).
 *
 * Run: `bun bench/ui.ts [rate ...]` (flows/s; default 5000), or as the `ui` part of
 * `bun run bench`. Needs /usr/bin/chromium (scripts/setup.sh) and ui/dist (scripts/build.sh).
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectBus, subjects } from "@periscope/bus";
import { freePort, startLocalNats } from "@periscope/devstack";
import {
  DropReason,
  EndpointSchema,
  type FlowBatch,
  FlowBatchSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import pino from "pino";
import { openUi } from "../tests/ui/browser.ts";
import { ServiceChildren, Teardown } from "./procs.ts";
import { emit, quantile, scrapeMetrics } from "./report.ts";

const BENCH = "ui";
const NODE = "bench-ui-node";
const FLOWS_PER_BATCH = 100;
const BATCHES = 20;
/** The page's flows/s is averaged over this many seconds. */
const RATE_WINDOW_S = 5;
/** Each rate is published this long. */
const PHASE_MS = 20_000;
const IDLE_MS = 3_000;
const TICK_MS = 10;
const RESTAMP_MS = 2_000;
const NAMESPACES = ["shop", "payments", "infra"];
const PODS_PER_NS = 8;

/** In-page probes, installed before the app's scripts run. */
const PROBES = `
(() => {
  const s = { frames: [], lag: [], longtasks: [], rates: [] };
  window.__uiBench = s;
  let last = performance.now();
  const frame = (t) => { s.frames.push(t - last); last = t; requestAnimationFrame(frame); };
  requestAnimationFrame((t) => { last = t; requestAnimationFrame(frame); });
  const tick = () => {
    const want = performance.now() + 20;
    setTimeout(() => { s.lag.push(Math.max(0, performance.now() - want)); tick(); }, 20);
  };
  tick();
  setInterval(() => {
    const t = document.querySelector("[data-testid=status-rate]")?.textContent ?? "";
    const m = /flows\\/s:\\s*([\\d.]+)/i.exec(t);
    if (m) s.rates.push(Number(m[1]));
  }, 1000);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) s.longtasks.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
  } catch {}
})();
`;

interface PageSamples {
  frames: number[];
  lag: number[];
  longtasks: number[];
  /** The status bar's flows/s, read in the page once a second. */
  rates: number[];
}

/** Synthetic batches: a stable set of pod-to-pod edges, 1 in 20 flows dropped. */
function syntheticBatches(): FlowBatch[] {
  const pods = NAMESPACES.flatMap((ns, n) =>
    Array.from({ length: PODS_PER_NS }, (_, i) => ({
      ns,
      name: `svc-${i}`,
      ip: `10.90.${n}.${i + 1}`,
    })),
  );
  const out: FlowBatch[] = [];
  let k = 0;
  for (let b = 0; b < BATCHES; b++) {
    const responses = Array.from({ length: FLOWS_PER_BATCH }, () => {
      k++;
      const src = pods[k % pods.length];
      const dst = pods[(k * 7 + 3) % pods.length];
      if (src === undefined || dst === undefined) throw new RangeError("no pods");
      const udp = k % 5 === 0;
      const dropped = k % 20 === 0;
      const port = udp ? 53 : 8080 + (k % 3);
      const flow = create(FlowSchema, {
        nodeName: NODE,
        verdict: dropped ? Verdict.DROPPED : Verdict.FORWARDED,
        ...(dropped ? { dropReasonDesc: DropReason.POLICY_DENY } : {}),
        IP: { source: src.ip, destination: dst.ip, ipVersion: IPVersion.IPv4 },
        l4: {
          protocol: udp
            ? { case: "UDP", value: { sourcePort: 40000 + (k % 1000), destinationPort: port } }
            : {
                case: "TCP",
                value: {
                  sourcePort: 40000 + (k % 1000),
                  destinationPort: port,
                  flags: { ACK: true, PSH: k % 2 === 0 },
                },
              },
        },
        source: create(EndpointSchema, { namespace: src.ns, podName: src.name, identity: 300 }),
        destination: create(EndpointSchema, {
          namespace: dst.ns,
          podName: dst.name,
          identity: 301,
        }),
        eventType: { type: dropped ? 1 : 4 },
        Summary: udp ? "UDP" : "TCP Flags: ACK",
      });
      return create(GetFlowsResponseSchema, {
        nodeName: NODE,
        responseTypes: { case: "flow", value: flow },
      });
    });
    out.push(create(FlowBatchSchema, { responses }));
  }
  return out;
}

/** Encodes the batches with the current time, re-stamped every {@link RESTAMP_MS}. */
function stamper(batches: FlowBatch[]): () => Uint8Array {
  let payloads: Uint8Array[] = [];
  let stampedMs = 0;
  let i = 0;
  return () => {
    const now = Date.now();
    if (now - stampedMs >= RESTAMP_MS) {
      const time = timestampFromMs(now);
      payloads = batches.map((batch) => {
        for (const r of batch.responses) {
          r.time = time;
          if (r.responseTypes.case === "flow") r.responseTypes.value.time = time;
        }
        return toBinary(FlowBatchSchema, batch);
      });
      // After encoding: a slow encode must not make every call encode again.
      stampedMs = Date.now();
    }
    const p = payloads[i++ % payloads.length];
    if (p === undefined) throw new RangeError("no payloads");
    return p;
  };
}

/** Publishes at `rate` flows/s for `ms`; returns flows sent. */
async function publish(
  send: (p: Uint8Array) => void,
  next: () => Uint8Array,
  rate: number,
  ms: number,
): Promise<number> {
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= ms) return sent;
    const owed = Math.floor((elapsed / 1000) * rate);
    while (sent + FLOWS_PER_BATCH <= owed) {
      send(next());
      sent += FLOWS_PER_BATCH;
    }
    await Bun.sleep(TICK_MS);
  }
}

function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/**
 * The observer's `events_lost_total` by `where` label, and its `flows_received_total`
 * under the key `received`.
 */
async function observerLost(opsPort: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const samples = await scrapeMetrics(opsPort).catch(() => []);
  for (const s of samples) {
    if (s.name.endsWith("observer_flows_received_total")) {
      out.set("received", (out.get("received") ?? 0) + s.value);
    }
    if (!s.name.endsWith("observer_events_lost_total")) continue;
    const where = s.labels.where ?? "unknown";
    out.set(where, (out.get(where) ?? 0) + s.value);
  }
  return out;
}

/**
 * Lost events as the status bar writes them, `lost events: N (n at where, …)`: the total
 * and the count per where (spaces in a where become `_`); undefined when not shown.
 */
export function lostShown(
  text: string,
): { total: number; byWhere: Map<string, number> } | undefined {
  const total = /lost events:\s*(\d+)/i.exec(text)?.[1];
  if (total === undefined) return undefined;
  const byWhere = new Map<string, number>();
  for (const m of text.matchAll(/(\d+) at ([^,()]+)/g)) {
    const where = (m[2] ?? "").trim().replace(/\s+/g, "_");
    byWhere.set(where, (byWhere.get(where) ?? 0) + Number(m[1]));
  }
  return { total: Number(total), byWhere };
}

/** Emits one phase's figures from the page's samples. */
function report(phase: string, s: PageSamples, ms: number): void {
  const f = sorted(s.frames);
  const l = sorted(s.lag);
  emit(BENCH, `${phase}.frames_per_s`, (f.length / ms) * 1000, "frames/s");
  emit(BENCH, `${phase}.frame_p50`, quantile(f, 0.5), "ms");
  emit(BENCH, `${phase}.frame_p99`, quantile(f, 0.99), "ms");
  emit(BENCH, `${phase}.frame_max`, f.at(-1) ?? Number.NaN, "ms");
  emit(BENCH, `${phase}.lag_p50`, quantile(l, 0.5), "ms");
  emit(BENCH, `${phase}.lag_p99`, quantile(l, 0.99), "ms");
  emit(BENCH, `${phase}.longtasks`, s.longtasks.length, "tasks");
  emit(
    BENCH,
    `${phase}.longtask_ms_per_s`,
    (s.longtasks.reduce((a, b) => a + b, 0) / ms) * 1000,
    "ms/s",
  );
}

/** Runs the bench; everything it starts is pushed onto `teardown`. */
export async function runUiBench(
  teardown: Teardown,
  rates: readonly number[] = [5000],
): Promise<void> {
  const log = pino({ level: "warn" }, pino.destination(2));
  const nats = await startLocalNats({ log });
  teardown.push(() => nats.stop());
  const bus = await connectBus({ url: nats.url, name: "bench-ui", log });
  teardown.push(() => bus.close());
  const children = new ServiceChildren();
  teardown.push(() => children.stop());
  const [ops, port] = [await freePort(), await freePort()];
  const observer = children.start("observer", [
    `--nats-url=${nats.url}`,
    "--log-level=warn",
    "--node-name=bench-ui-observer",
    `--listen-address=127.0.0.1:${port}`,
    `--ops-addr=127.0.0.1:${ops}`,
  ]);
  await children.ready(observer, ops);
  const send = (p: Uint8Array): void => bus.nc.publish(subjects.flows(NODE), p);
  const next = stamper(syntheticBatches());

  const ui = await openUi();
  teardown.push(() => ui.close());
  await ui.page.addInitScript(PROBES);
  const res = await ui.page.goto(`http://127.0.0.1:${port}/`);
  if (res?.status() !== 200) throw new Error(`GET / answered ${res?.status()}`);
  await ui.page.locator("[data-testid=service-map]").first().waitFor({ timeout: 30_000 });
  const take = (): Promise<PageSamples> =>
    ui.page.evaluate(() => {
      const w = globalThis as unknown as { __uiBench: PageSamples };
      const s = w.__uiBench;
      const out = { frames: s.frames, lag: s.lag, longtasks: s.longtasks, rates: s.rates };
      w.__uiBench.frames = [];
      w.__uiBench.lag = [];
      w.__uiBench.longtasks = [];
      w.__uiBench.rates = [];
      return out;
    });
  await take();
  await Bun.sleep(IDLE_MS);
  report("idle", await take(), IDLE_MS);
  // A first map to draw before the measured phases.
  await publish(send, next, 1000, 2000);
  for (const rate of rates) {
    const lostBefore = await observerLost(ops);
    await take();
    const t0 = performance.now();
    const sent = await publish(send, next, rate, PHASE_MS);
    const ms = performance.now() - t0;
    const samples = await take();
    const shownEach = samples.rates;
    process.stderr.write(`bench ui: page flows/s each second at ${rate}: ${shownEach.join(" ")}\n`);
    const published = (sent / ms) * 1000;
    // The status bar's rate is over the last 5 s: its first seconds still average the rate before.
    const shownP50 = quantile(sorted(shownEach.slice(RATE_WINDOW_S)), 0.5);
    emit(BENCH, `${rate}.published`, published, "flows/s");
    emit(BENCH, `${rate}.flows_shown_p50`, shownP50, "flows/s");
    emit(BENCH, `${rate}.shown_ratio`, shownP50 / published, "ratio");
    report(String(rate), samples, ms);
    const status = await ui.page
      .locator("[data-testid=status]")
      .first()
      .innerText({ timeout: 2000 })
      .catch(() => "");
    process.stderr.write(`bench ui: status at ${rate} flows/s: ${status.replace(/\s+/g, " ")}\n`);
    const shown = /flows\/s:\s*([\d.]+)/i.exec(status)?.[1];
    if (shown !== undefined) emit(BENCH, `${rate}.flows_shown`, Number(shown), "flows/s");
    const lostText = await ui.page
      .locator("[data-testid=status-lost]")
      .first()
      .innerText({ timeout: 2000 })
      .catch(() => "");
    const lost = lostShown(lostText);
    if (lost !== undefined) {
      emit(BENCH, `${rate}.lost_shown`, lost.total, "events");
      for (const [where, n] of lost.byWhere)
        emit(BENCH, `${rate}.lost_shown.${where}`, n, "events");
    }
    const lostAfter = await observerLost(ops);
    for (const [where, n] of lostAfter) {
      const grown = n - (lostBefore.get(where) ?? 0);
      if (where === "received")
        emit(BENCH, `${rate}.observer_received`, (grown / ms) * 1000, "flows/s");
      else if (grown > 0) emit(BENCH, `${rate}.observer_lost.${where}`, grown, "events");
    }
    await ui.screenshot(`bench-${rate}`);
  }
  if (ui.errors.length > 0)
    process.stderr.write(`bench ui: page errors:\n${ui.errors.join("\n")}\n`);
}

if (import.meta.main) {
  const teardown = new Teardown();
  const rates = process.argv.slice(2).map(Number);
  runUiBench(teardown, rates.length > 0 ? rates : undefined)
    .catch((err: unknown) => {
      process.stderr.write(
        `bench ui: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    })
    .finally(() => teardown.run().then(() => process.exit()));
}
