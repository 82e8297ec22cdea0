import type { Flow } from "@periscope/proto";
import type { Registry } from "prom-client";
import type { ContextOptions } from "./context.ts";
import type { Journal, LabelSetLimit } from "./table.ts";

/** One enabled Hubble metrics handler: updates its metrics from each flow. */
export interface MetricHandler {
  process(flow: Flow): void;
}

/** What a handler is built from. */
export interface HandlerDeps {
  readonly registry: Registry;
  readonly limit: LabelSetLimit;
  /** Where the handler's metrics put their increments. */
  readonly journal: Journal;
  readonly context: ContextOptions;
  /** The handler's own options, keys lower-cased (`query`, `ignoreaaaa`). */
  readonly options: ReadonlyMap<string, string>;
}

/** Builds a handler and registers its metrics. */
export type HandlerFactory = (deps: HandlerDeps) => MetricHandler;
