import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sanitizeToken } from "@periscope/bus";
import { processV1, telemetryV1 } from "@periscope/proto";
import type { ContainerCache, ContainerEvent } from "./container-cache.ts";

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
export interface ContainerEventStats {
  published: number;
  /** Containers announced at start (their state then, not a change). */
  announced: number;
  /** Changes seen while another enricher was the publisher. */
  skipped: number;
}

/**
 * Publishes every lifecycle change of `containers` on `periscope.telemetry.<node>.container`
 * (core NATS, protobuf `TelemetryEvent`) while `publisher()` is true: of several enrichers
 * reading the same engine, one publishes (the enricher names it; default: always). At
 * start, the publisher first announces each Docker container the cache already knows
 * (not destroyed) with its current state, so subscribers learn the names and images of
 * containers that ran before it. Returns the stop function and the counters.
 */
export function publishContainerEvents(opts: {
  readonly nc: { publish(subject: string, data: Uint8Array): void };
  readonly node: string;
  readonly containers: ContainerCache;
  readonly publisher?: () => boolean;
}): { stop: () => void; stats: ContainerEventStats } {
  const subject = containerEventSubject(opts.node);
  const stats: ContainerEventStats = { published: 0, announced: 0, skipped: 0 };
  const send = (ev: ContainerEvent): void =>
    opts.nc.publish(
      subject,
      toBinary(telemetryV1.TelemetryEventSchema, containerTelemetryEvent(opts.node, ev)),
    );
  if (opts.publisher === undefined || opts.publisher()) {
    const now = Date.now();
    for (const c of opts.containers.list()) {
      if (c.runtime !== "docker" || c.state === "" || c.state === "destroyed") continue;
      send({ state: c.state, container: c, timeMs: now });
      stats.announced++;
    }
  }
  const off = opts.containers.subscribe((ev) => {
    if (opts.publisher !== undefined && !opts.publisher()) {
      stats.skipped++;
      return;
    }
    send(ev);
    stats.published++;
  });
  return { stop: off, stats };
}
