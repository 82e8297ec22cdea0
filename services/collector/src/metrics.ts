import type { Metrics } from "@periscope/telemetry";
import type { Counter, Gauge, Registry } from "prom-client";

/** Where a record was lost, the `where` label of events_lost_total. */
export type LossPlace = "kernel" | "queue" | "publish";

/** Why an interface was detached, the `reason` label of interface_detaches_total. */
export type DetachReason = "vanished" | "recreated" | "stopped";

/** The collector's Prometheus metrics plus plain-number mirrors for stats(). */
export class CollectorMetrics {
  readonly registry: Registry;
  /** Running totals, the same as the counters. */
  readonly stats = {
    eventsRead: 0,
    framesPublished: 0,
    eventsPublished: 0,
    kernelLost: 0,
    queueLost: 0,
    publishLost: 0,
  };
  readonly #eventsRead: Counter;
  readonly #framesPublished: Counter;
  readonly #eventsPublished: Counter;
  readonly #eventsLost: Counter<"where">;
  readonly #attachErrors: Counter;
  readonly #errors: Counter<"kind">;
  readonly #attached: Gauge;
  readonly #attaches: Counter;
  readonly #detaches: Counter<"reason">;
  readonly #missed: Counter;

  constructor(metrics: Metrics) {
    this.registry = metrics.registry;
    this.#eventsRead = metrics.counter(
      "events_read_total",
      "Records drained from the kernel ring buffer.",
    );
    this.#framesPublished = metrics.counter(
      "frames_published_total",
      "RawFrames published to NATS.",
    );
    this.#eventsPublished = metrics.counter(
      "events_published_total",
      "Records published to NATS inside RawFrames.",
    );
    this.#eventsLost = metrics.counter(
      "events_lost_total",
      "Records lost: kernel = ring buffer full, queue = publish queue full, publish = NATS publish failed.",
      ["where"],
    );
    for (const where of ["kernel", "queue", "publish"] as const) this.#eventsLost.inc({ where }, 0);
    this.#attachErrors = metrics.counter(
      "attach_errors_total",
      "Failed attempts to attach an interface.",
    );
    this.#errors = metrics.counter("errors_total", "Errors by kind.", ["kind"]);
    this.#attached = metrics.gauge(
      "attached_interfaces",
      "Interfaces the trace program is attached to.",
    );
    this.#attaches = metrics.counter(
      "interface_attaches_total",
      "Successful attaches of the trace program to an interface (also re-attaches).",
    );
    this.#detaches = metrics.counter(
      "interface_detaches_total",
      "Detaches: vanished = device or netns gone, recreated = same name with a new ifindex or netns, stopped = shutdown.",
      ["reason"],
    );
    for (const reason of ["vanished", "recreated", "stopped"] as const) {
      this.#detaches.inc({ reason }, 0);
    }
    this.#missed = metrics.counter(
      "discovery_missed_total",
      "Attaches and detaches the periodic full rescan made because device or namespace notifications missed them.",
    );
  }

  missedByNotifications(n: number): void {
    this.#missed.inc(n);
  }

  read(n: number): void {
    this.stats.eventsRead += n;
    this.#eventsRead.inc(n);
  }

  published(records: number): void {
    this.stats.framesPublished++;
    this.stats.eventsPublished += records;
    this.#framesPublished.inc();
    this.#eventsPublished.inc(records);
  }

  lost(where: LossPlace, records: number): void {
    if (records <= 0) return;
    if (where === "kernel") this.stats.kernelLost += records;
    else if (where === "queue") this.stats.queueLost += records;
    else this.stats.publishLost += records;
    this.#eventsLost.inc({ where }, records);
  }

  attachError(): void {
    this.#attachErrors.inc();
  }

  attachedOne(): void {
    this.#attaches.inc();
  }

  detachedOne(reason: DetachReason): void {
    this.#detaches.inc({ reason });
  }

  error(kind: string): void {
    this.#errors.inc({ kind });
  }

  setAttached(n: number): void {
    this.#attached.set(n);
  }
}
