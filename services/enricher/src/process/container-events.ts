import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sanitizeToken } from "@periscope/bus";
import { processV1, telemetryV1 } from "@periscope/proto";
import type { Metrics } from "@periscope/telemetry";
import type { ContainerCache, ContainerEvent } from "./container-cache.ts";
import { type ContainerEventKind, containerEventCounter } from "./metrics.ts";

/** `periscope.telemetry.<node>.container`: where container lifecycle events go. */
export function containerEventSubject(node: string): string {
  return `periscope.telemetry.${sanitizeToken(node)}.container`;
}

/** A lifecycle change as the `TelemetryEvent` direct subscribers and the observer read. */
export function containerTelemetryEvent(
  node: string,
  ev: ContainerEvent,
): telemetryV1.TelemetryEvent {
  const c = ev.container;
  return create(telemetryV1.TelemetryEventSchema, {
    time: timestampFromMs(ev.timeMs),
    nodeName: node,
    event: {
      case: "container",
      value: create(telemetryV1.ContainerEventSchema, {
        action: ev.state,
        container: create(processV1.ContainerSchema, {
          id: c.id,
          name: c.name,
          image: c.image,
          runtime: c.runtime,
          labels: c.labels,
          state: ev.state,
        }),
      }),
    },
  });
}

/** Counters of a container event publisher. */
export interface ContainerEventStats extends Record<ContainerEventKind, number> {
  /** Changes sent (this enricher was the publisher when they happened). */
  published: number;
  /**
   * Containers announced with their state then (not a change): at start, and each time
   * this enricher became the publisher.
   */
  announced: number;
  /** Changes seen while another enricher was the publisher. */
  skipped: number;
}

/** The publisher of container events (see {@link publishContainerEvents}). */
export interface ContainerEventPublisher {
  /** Stops publishing (and checking the publisher role). */
  stop(): void;
  /**
   * Reads `publisher()` now: when it turned true since the last check, announces the
   * running containers. Call it when the role may have changed (the periodic check
   * catches what no call reports). Never throws.
   */
  recheck(): void;
  readonly stats: ContainerEventStats;
}

/** How often the publisher role is checked without being told, ms. */
const CHECK_MS = 1000;

/**
 * Publishes every lifecycle change of `containers` on `periscope.telemetry.<node>.container`
 * (core NATS, protobuf `TelemetryEvent`) while `publisher()` is true: of several enrichers
 * reading the same engine, one publishes (the enricher names it; default: always). When it
 * becomes the publisher (at start, or later when the previous one stopped or died), it
 * first announces each Docker container the cache knows (not destroyed) with its current
 * state, so subscribers learn the names and images of containers that ran before. The
 * role is checked at each change, at each `recheck()` and every `checkMs` (default 1 s).
 * With `metrics`, the counters are exported as `container_events_total{kind}` (see
 * containerEventCounter).
 */
export function publishContainerEvents(opts: {
  readonly nc: { publish(subject: string, data: Uint8Array): void };
  readonly node: string;
  readonly containers: ContainerCache;
  readonly publisher?: () => boolean;
  readonly metrics?: Metrics;
  readonly checkMs?: number;
}): ContainerEventPublisher {
  const subject = containerEventSubject(opts.node);
  const stats: ContainerEventStats = { published: 0, announced: 0, skipped: 0 };
  const count = opts.metrics ? containerEventCounter(opts.metrics) : undefined;
  const note = (kind: keyof ContainerEventStats): void => {
    stats[kind]++;
    count?.(kind);
  };
  const send = (ev: ContainerEvent): void =>
    opts.nc.publish(
      subject,
      toBinary(telemetryV1.TelemetryEventSchema, containerTelemetryEvent(opts.node, ev)),
    );
  const isPublisher = (): boolean => opts.publisher === undefined || opts.publisher();
  /** Announces the known Docker containers, but `except` (whose change is sent next). */
  const announce = (except?: string): void => {
    const now = Date.now();
    for (const c of opts.containers.list()) {
      if (c.runtime !== "docker" || c.state === "" || c.state === "destroyed") continue;
      if (c.id === except) continue;
      send({ state: c.state, container: c, timeMs: now });
      note("announced");
    }
  };
  /** Whether this enricher was the publisher at the last check. */
  let active = false;
  let stopped = false;
  const check = (except?: string): boolean => {
    if (stopped) return false;
    if (!isPublisher()) {
      active = false;
      return false;
    }
    if (!active) {
      try {
        announce(except);
        active = true;
      } catch {
        // Not all sent (the connection closed): announced again at the next check.
      }
    }
    return true;
  };
  check();
  const off = opts.containers.subscribe((ev) => {
    if (!check(ev.container.id)) {
      note("skipped");
      return;
    }
    send(ev);
    note("published");
  });
  const timer = setInterval(() => check(), opts.checkMs ?? CHECK_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      off();
    },
    recheck: () => {
      check();
    },
    stats,
  };
}
