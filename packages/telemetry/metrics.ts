import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Registry as PromRegistry,
  Registry,
} from "prom-client";
import { TelemetryError } from "./errors.ts";

export { Registry };

/** One service's metrics: its own registry plus helpers that add the service prefix. */
export interface Metrics {
  /** Registry holding the default process metrics and everything made through the helpers. */
  readonly registry: PromRegistry;
  /** `periscope_<service>_` — what every helper prepends to a name. */
  readonly prefix: string;
  /** A counter named `<prefix><name>`; by convention `name` ends in `_total`. */
  counter<L extends string = string>(
    name: string,
    help: string,
    labelNames?: readonly L[],
  ): Counter<L>;
  /** A gauge named `<prefix><name>`. */
  gauge<L extends string = string>(name: string, help: string, labelNames?: readonly L[]): Gauge<L>;
  /** A histogram named `<prefix><name>`; `buckets` are upper bounds in the metric's unit. */
  histogram<L extends string = string>(
    name: string,
    help: string,
    labelNames?: readonly L[],
    buckets?: readonly number[],
  ): Histogram<L>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** `periscope_<service>_` with characters Prometheus does not allow turned into `_`. */
export function metricPrefix(service: string): string {
  return `periscope_${service.replace(/[^a-zA-Z0-9_]/g, "_")}_`;
}

/**
 * A fresh prom-client registry for `service` with the default process metrics
 * (`process_*`, `nodejs_*`) and helpers that create `periscope_<service>_*` metrics in it.
 * A name that already starts with the prefix is used as is.
 */
export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const prefix = metricPrefix(service);
  const fullName = (name: string): string => {
    const full = name.startsWith(prefix) ? name : `${prefix}${name}`;
    if (!METRIC_NAME.test(full)) throw new TelemetryError(`invalid metric name "${full}"`);
    return full;
  };
  return {
    registry,
    prefix,
    counter: (name, help, labelNames = []) =>
      new Counter({ name: fullName(name), help, labelNames, registers: [registry] }),
    gauge: (name, help, labelNames = []) =>
      new Gauge({ name: fullName(name), help, labelNames, registers: [registry] }),
    histogram: (name, help, labelNames = [], buckets) =>
      new Histogram({
        name: fullName(name),
        help,
        labelNames,
        registers: [registry],
        ...(buckets ? { buckets: [...buckets] } : {}),
      }),
  };
}
