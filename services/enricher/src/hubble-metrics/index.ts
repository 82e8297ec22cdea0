/**
 * Hubble's flow metrics (`hubble_*`), computed by the enricher from the flows it
 * publishes and served on their own port, like Hubble's metrics server.
 */
import { type Flow, type FlowBatch, LostEventSource } from "@periscope/proto";
import {
  type Logger,
  type OpsServer,
  RateLimitedLog,
  startOpsServer,
  TelemetryError,
} from "@periscope/telemetry";
import { Counter, Gauge, Registry } from "prom-client";
import { type ContextOptions, parseContextOptions } from "./context.ts";
import type { HandlerFactory, MetricHandler } from "./handler.ts";
import { dnsHandler } from "./handlers/dns.ts";
import { dropHandler } from "./handlers/drop.ts";
import { flowHandler } from "./handlers/flow.ts";
import { httpHandler, httpV2Handler } from "./handlers/http.ts";
import { icmpHandler } from "./handlers/icmp.ts";
import { portDistributionHandler } from "./handlers/port-distribution.ts";
import { tcpHandler } from "./handlers/tcp.ts";
import {
  DEFAULT_MAX_LABEL_SETS,
  DEFAULT_METRICS_SERVER,
  type HandlerName,
  type HandlerSpec,
} from "./spec.ts";
import {
  applyStaged,
  type Cell,
  Journal,
  type LabelSetLimit,
  type StagedIncrements,
  TableCounter,
  TableHistogram,
} from "./table.ts";

export {
  DEFAULT_MAX_LABEL_SETS,
  DEFAULT_METRICS_SERVER,
  type HandlerSpec,
  parseMetricsSpec,
} from "./spec.ts";

const FACTORIES: Readonly<Record<HandlerName, HandlerFactory>> = {
  flow: flowHandler,
  drop: dropHandler,
  tcp: tcpHandler,
  dns: dnsHandler,
  http: httpHandler,
  httpV2: httpV2Handler,
  icmp: icmpHandler,
  "port-distribution": portDistributionHandler,
};

/** Options for {@link HubbleMetrics}. */
export interface HubbleMetricsOptions {
  readonly specs: readonly HandlerSpec[];
  /** Label sets per metric at most (default {@link DEFAULT_MAX_LABEL_SETS}). */
  readonly maxLabelSets?: number;
  readonly log: Logger;
}

/**
 * The enabled handlers and their registry. `hubble_lost_events_total{source}` is always
 * there (as in Hubble). Each metric keeps at most `maxLabelSets` label sets; increments
 * for further sets are counted in `periscope_hubble_metrics_overflow_total{metric}` and
 * logged (rate-limited) instead.
 */
export class HubbleMetrics {
  readonly registry = new Registry();
  readonly #handlers: MetricHandler[] = [];
  readonly #lost: TableCounter;
  readonly #errors: Counter<string>;
  readonly #errorLog: RateLimitedLog;
  readonly #source = new Map<LostEventSource, string[]>();
  readonly #names: readonly HandlerName[];
  readonly #journal = new Journal();

  constructor(opts: HubbleMetricsOptions) {
    const { registry } = this;
    const journal = this.#journal;
    const { log } = opts;
    const overflow = new Counter({
      name: "periscope_hubble_metrics_overflow_total",
      help: "Hubble metric increments not kept because the metric already held its maximum number of label sets",
      labelNames: ["metric"],
      registers: [registry],
    });
    const overflowLog = new RateLimitedLog({
      log,
      describe: (n) => `${n} hubble metric increments over the label set limit not kept`,
    });
    const overflowCells = new Map<string, Cell>();
    const limit: LabelSetLimit = {
      max: opts.maxLabelSets ?? DEFAULT_MAX_LABEL_SETS,
      overflow(metric) {
        let cell = overflowCells.get(metric);
        if (cell === undefined) {
          cell = {
            apply(n) {
              overflow.inc({ metric }, n);
              overflowLog.note(
                `${metric} holds ${limit.max} label sets, more are not kept`,
                { metric, relatedMetric: "periscope_hubble_metrics_overflow_total" },
                n,
              );
            },
          };
          overflowCells.set(metric, cell);
        }
        journal.add(cell, 1);
      },
    };
    this.#errors = new Counter({
      name: "periscope_hubble_metrics_errors_total",
      help: "Flows a Hubble metrics handler failed on (the flow is still published)",
      labelNames: ["handler"],
      registers: [registry],
    });
    this.#errorLog = new RateLimitedLog({
      log,
      describe: (n) => `hubble metrics handlers failed on ${n} flows`,
    });
    this.#lost = new TableCounter({
      name: "hubble_lost_events_total",
      help: "Number of lost events",
      labelNames: ["source"],
      registry,
      limit,
      journal,
    });
    for (const s of [
      LostEventSource.PERF_EVENT_RING_BUFFER,
      LostEventSource.OBSERVER_EVENTS_QUEUE,
    ]) {
      this.#lost.add([this.#sourceLabel(s)], 0);
    }
    const names: HandlerName[] = [];
    const contexts = new Map<string, ContextOptions>();
    for (const spec of opts.specs) {
      // Handlers with the same context options share one object (and its per-flow values).
      const contextKey = JSON.stringify(
        [...spec.options].filter(([k]) => k.endsWith("context")).sort(),
      );
      let context = contexts.get(contextKey);
      if (context === undefined) {
        context = parseContextOptions("metrics", spec.name, spec.options);
        contexts.set(contextKey, context);
      }
      this.#handlers.push(
        FACTORIES[spec.name]({ registry, limit, journal, context, options: spec.options }),
      );
      names.push(spec.name);
    }
    this.#names = names;
    new Gauge({
      name: "periscope_hubble_metrics_label_sets",
      help: "Label sets each Hubble metric holds",
      labelNames: ["metric"],
      registers: [registry],
      collect() {
        for (const m of registry.getMetricsAsArray()) {
          if (m instanceof TableCounter || m instanceof TableHistogram) {
            this.set({ metric: m.metricName }, m.size);
          }
        }
      },
    });
  }

  #sourceLabel(source: LostEventSource): string {
    return (LostEventSource[source] ?? String(source)).toLowerCase();
  }

  /** Updates every enabled handler from one flow; a failing handler is counted, never thrown. */
  observeFlow(flow: Flow): void {
    for (let i = 0; i < this.#handlers.length; i++) {
      try {
        this.#handlers[i]?.process(flow);
      } catch (err) {
        const handler = this.#names[i] ?? "unknown";
        this.#errors.inc({ handler });
        this.#errorLog.note(err instanceof Error ? err.message : String(err), { handler });
      }
    }
  }

  /**
   * Resolves the increments `batch` makes (label work done now, while its flows are hot)
   * without applying them: {@link commit} applies them once the batch is stored, and a
   * batch never stored is simply dropped.
   */
  stage(batch: FlowBatch): StagedIncrements {
    this.#journal.staging = true;
    try {
      this.observe(batch);
    } finally {
      this.#journal.staging = false;
    }
    return this.#journal.take();
  }

  /** Applies increments {@link stage} resolved. */
  commit(staged: StagedIncrements): void {
    applyStaged(staged);
  }

  /** Updates the metrics from a batch: each flow, and each lost event by its source. */
  observe(batch: FlowBatch): void {
    for (const r of batch.responses) {
      const t = r.responseTypes;
      if (t.case === "flow") this.observeFlow(t.value);
      else if (t.case === "lostEvents") {
        let label = this.#source.get(t.value.source);
        if (label === undefined) {
          label = [this.#sourceLabel(t.value.source)];
          this.#source.set(t.value.source, label);
        }
        this.#lost.add(label, Number(t.value.numEventsLost));
      }
    }
  }
}

/** A running Hubble metrics server. */
export interface RunningHubbleMetrics {
  readonly metrics: HubbleMetrics;
  /** The port bound (differs from the configured one when that was 0). */
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Builds the handlers of `specs` and serves their registry on `addr` (`GET /metrics`,
 * `/healthz`), Hubble's `--hubble-metrics-server` (default `:9965`).
 */
export async function startHubbleMetrics(
  opts: HubbleMetricsOptions & { readonly addr: string },
): Promise<RunningHubbleMetrics> {
  const metrics = new HubbleMetrics(opts);
  let server: OpsServer;
  try {
    server = await startOpsServer({
      addr: opts.addr,
      registry: metrics.registry,
      ready: () => true,
      log: opts.log,
    });
  } catch (err) {
    throw new TelemetryError(`hubble metrics server cannot listen on ${opts.addr}`, {
      cause: err,
    });
  }
  opts.log.info(
    { addr: opts.addr, port: server.port, handlers: opts.specs.map((s) => s.name) },
    "hubble metrics server listening",
  );
  return { metrics, port: server.port, stop: () => server.stop() };
}

/** The enricher settings {@link startConfiguredHubbleMetrics} reads. */
export interface HubbleMetricsSettings {
  readonly metrics?: readonly HandlerSpec[];
  readonly metricsServer?: string;
  readonly metricsMaxLabelSets?: number;
}

/**
 * Starts the Hubble metrics server when `--metrics` enabled at least one handler
 * (on `--metrics-server`, default `:9965`); undefined otherwise.
 */
export async function startConfiguredHubbleMetrics(
  config: HubbleMetricsSettings,
  log: Logger,
): Promise<RunningHubbleMetrics | undefined> {
  if (config.metrics === undefined || config.metrics.length === 0) return undefined;
  return startHubbleMetrics({
    specs: config.metrics,
    addr: config.metricsServer ?? DEFAULT_METRICS_SERVER,
    ...(config.metricsMaxLabelSets !== undefined
      ? { maxLabelSets: config.metricsMaxLabelSets }
      : {}),
    log,
  });
}
