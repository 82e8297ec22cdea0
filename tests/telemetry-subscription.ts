/**
 * Reading Telemetry/Subscribe streams in tests: a subscription read in the background, and
 * waiting for the observer to count open subscriptions.
 */
import { create } from "@bufbuild/protobuf";
import type { createClient } from "@connectrpc/connect";
import { waitFor } from "@periscope/devstack";
import { telemetryV1 } from "@periscope/proto";
import type { Stack } from "./harness.ts";

type TelemetryClient = ReturnType<typeof createClient<typeof telemetryV1.Telemetry>>;

/** A subscription's fields, as `create(SubscriptionSchema, …)` takes them. */
export type SubscriptionInit = Parameters<typeof create<typeof telemetryV1.SubscriptionSchema>>[1];

/** A subscription read in the background. */
export interface OpenSubscription {
  /** Events received so far. */
  readonly events: telemetryV1.TelemetryEvent[];
  /** The stream ended (by the server or by `stop()`). */
  ended(): boolean;
  /** What ended it, when that was not `stop()`. */
  error(): unknown;
  /** Cancels the stream and waits for the reader to end. */
  stop(): Promise<void>;
}

/** Opens a subscription and reads it in the background until it ends or `stop()`. */
export function openSubscription(client: TelemetryClient, sub: SubscriptionInit): OpenSubscription {
  const ctl = new AbortController();
  const events: telemetryV1.TelemetryEvent[] = [];
  let ended = false;
  let error: unknown;
  const done = (async () => {
    try {
      for await (const ev of client.subscribe(create(telemetryV1.SubscriptionSchema, sub), {
        signal: ctl.signal,
      })) {
        events.push(ev);
      }
    } catch (err) {
      if (!ctl.signal.aborted) error = err;
    } finally {
      ended = true;
    }
  })();
  return {
    events,
    ended: () => ended,
    error: () => error,
    async stop() {
      ctl.abort();
      await done;
    },
  };
}

/** Waits until the stack's observer counts `n` open subscriptions. */
export async function waitSubscriptions(stack: Stack, n: number): Promise<void> {
  await waitFor(
    async () =>
      (await stack.metric("observer", "periscope_observer_telemetry_subscriptions")) === n,
    { timeoutMs: 10_000, what: `${n} open subscriptions` },
  );
}
