import { fromBinary } from "@bufbuild/protobuf";
import { type ConsumerMessages, DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { type Bus, EVENTS_STREAM, ensureStream, subjects } from "@periscope/bus";
import { type GetAgentEventsResponse, GetAgentEventsResponseSchema } from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import type { ObserverMetrics } from "./metrics.ts";
import type { EventLog } from "./side-events.ts";

/** A running reader of agent events. */
export interface AgentIngest {
  /** Agent events stored so far. */
  readonly received: () => number;
  stop(): Promise<void>;
}

/**
 * Reads every agent event in `PERISCOPE_EVENTS` (what the stream still holds, then new
 * ones) through an ordered consumer into `log`, so GetAgentEvents has history across
 * observer restarts. An undecodable message is counted (`errors_total{kind=
 * "malformed_agent_event"}`) and logged, never fatal.
 */
export async function startAgentIngest(opts: {
  readonly bus: Bus;
  readonly log: Logger;
  readonly metrics?: ObserverMetrics | undefined;
  readonly events: EventLog<GetAgentEventsResponse>;
}): Promise<AgentIngest> {
  const { bus, log, metrics, events } = opts;
  await ensureStream(bus, "events");
  bus.onReconnect(() => {
    ensureStream(bus, "events").catch((err: unknown) => {
      metrics?.errors.inc({ kind: "stream" });
      log.error({ err }, "events stream not available after reconnect");
    });
  });
  const consumer = await jetstream(bus.nc).consumers.get(EVENTS_STREAM, {
    filter_subjects: subjects.agentAll, // one subject: nats-server 2.9 takes no list
    deliver_policy: DeliverPolicy.All,
  });
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
  let received = 0;
  const loop = (async () => {
    try {
      for await (const msg of messages) {
        try {
          events.add(fromBinary(GetAgentEventsResponseSchema, msg.data));
          received++;
        } catch (err) {
          metrics?.errors.inc({ kind: "malformed_agent_event" });
          log.warn({ err, subject: msg.subject }, "undecodable agent event skipped");
        }
      }
    } catch (err) {
      metrics?.errors.inc({ kind: "subscription" });
      log.error({ err }, "agent event consumer ended with an error");
    }
  })();
  log.info({ stream: EVENTS_STREAM, subject: subjects.agentAll }, "ingesting agent events");
  return {
    received: () => received,
    async stop() {
      await messages.close();
      await loop;
    },
  };
}
