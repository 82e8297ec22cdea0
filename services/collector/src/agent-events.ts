/**
 * Agent events of the collector: start and stop, interface attach and detach, program
 * load and policy changes, published as `observer.GetAgentEventsResponse` (a
 * flow.AgentEvent with node and time) on `periscope.agent.<node>` into the
 * `PERISCOPE_EVENTS` stream, so the observer serves their history and `periscope
 * monitor` shows them live.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { subjects } from "@periscope/bus";
import {
  type AgentEvent,
  AgentEventSchema,
  AgentEventType,
  AgentEventUnknownSchema,
  EndpointUpdateNotificationSchema,
  GetAgentEventsResponseSchema,
  PolicyUpdateNotificationSchema,
  TimeNotificationSchema,
} from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import type { AttachedDevice } from "./attacher.ts";

/** Publishes one stored message; rejects when the broker did not store it. */
export type AgentEventPublish = (
  subject: string,
  payload: Uint8Array,
  msgId: string,
) => Promise<void>;

/** Settings and parts of {@link AgentEvents}. */
export interface AgentEventsOptions {
  readonly node: string;
  /** Collector run id: message ids are `<bootId>.agent.<n>` (stored once on a retry). */
  readonly bootId: string;
  readonly publish: AgentEventPublish;
  readonly log: Logger;
  /** Counts each event: `published`, or `lost` after the last retry failed. */
  readonly count?: (result: "published" | "lost") => void;
  /** Publish attempts per event (default 5). */
  readonly attempts?: number;
  /** Pause between attempts, ms (default 500). */
  readonly retryDelayMs?: number;
  /** Wall clock, ms (default Date.now). */
  readonly now?: () => number;
}

/** A policy change, as the collector's policy code reports it. */
export interface PolicyChange {
  /** Revision the rules now in the kernel belong to. */
  readonly revision: bigint;
  /** Rules in effect after the change. */
  readonly ruleCount: number;
  /** What the policy is about, e.g. `["policy=deny-db", "namespace=demo"]`. */
  readonly labels?: readonly string[];
  /** True when a policy was removed (POLICY_DELETED). */
  readonly deleted?: boolean;
}

/**
 * The collector's agent events. Each hook returns at once; events are published in
 * order by one background chain, retried, and counted lost (`count("lost")` and an
 * error log) if the broker never stores them. `flush()` waits for what is queued.
 */
export class AgentEvents {
  readonly #opts: AgentEventsOptions;
  readonly #subject: string;
  #seq = 0;
  #chain: Promise<void> = Promise.resolve();

  constructor(opts: AgentEventsOptions) {
    this.#opts = opts;
    this.#subject = subjects.agent(opts.node);
  }

  /** AGENT_STARTED with the start time. */
  started(): void {
    const time = timestampFromMs(this.#now());
    this.#emit(AgentEventType.AGENT_STARTED, {
      case: "agentStart",
      value: create(TimeNotificationSchema, { time }),
    });
  }

  /** AGENT_EVENT_UNKNOWN `collector_stopped` with the run's counters as JSON. */
  stopped(stats: Readonly<Record<string, number>>): void {
    this.#unknown("collector_stopped", { bootId: this.#opts.bootId, ...stats });
  }

  /** ENDPOINT_CREATED for a device the programs were attached to. */
  attached(dev: AttachedDevice): void {
    this.#endpoint(AgentEventType.ENDPOINT_CREATED, dev, undefined);
  }

  /** ENDPOINT_DELETED for a device detached (`reason`: vanished, recreated, stopped). */
  detached(dev: AttachedDevice, reason: string): void {
    this.#endpoint(AgentEventType.ENDPOINT_DELETED, dev, reason);
  }

  /** AGENT_EVENT_UNKNOWN `program_loaded` naming the object and its programs. */
  programLoaded(info: Readonly<Record<string, string | number | readonly string[]>>): void {
    this.#unknown("program_loaded", info);
  }

  /** POLICY_UPDATED (or POLICY_DELETED) with revision, rule count and labels. */
  policyChanged(change: PolicyChange): void {
    this.#emit(change.deleted ? AgentEventType.POLICY_DELETED : AgentEventType.POLICY_UPDATED, {
      case: "policyUpdate",
      value: create(PolicyUpdateNotificationSchema, {
        revision: change.revision,
        ruleCount: BigInt(change.ruleCount),
        labels: [...(change.labels ?? [])],
      }),
    });
  }

  /** Resolves once every event emitted so far was published or counted lost. */
  flush(): Promise<void> {
    return this.#chain;
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }

  #endpoint(type: AgentEventType, dev: AttachedDevice, reason: string | undefined): void {
    const labels = [`interface=${dev.target.ifname}`];
    if (dev.target.netns !== undefined) labels.push(`netns=${dev.target.netns}`);
    labels.push(`netns_cookie=${dev.netnsCookie}`);
    if (reason !== undefined) labels.push(`reason=${reason}`);
    this.#emit(type, {
      case: "endpointUpdate",
      value: create(EndpointUpdateNotificationSchema, {
        id: BigInt(dev.ifindex),
        labels,
        podName: dev.name,
      }),
    });
  }

  #unknown(type: string, notification: object): void {
    this.#emit(AgentEventType.AGENT_EVENT_UNKNOWN, {
      case: "unknown",
      value: create(AgentEventUnknownSchema, { type, notification: JSON.stringify(notification) }),
    });
  }

  #emit(type: AgentEventType, notification: AgentEvent["notification"]): void {
    const msg = create(GetAgentEventsResponseSchema, {
      agentEvent: create(AgentEventSchema, { type, notification }),
      nodeName: this.#opts.node,
      time: timestampFromMs(this.#now()),
    });
    const payload = toBinary(GetAgentEventsResponseSchema, msg);
    const msgId = `${this.#opts.bootId}.agent.${++this.#seq}`;
    this.#chain = this.#chain.then(() => this.#publish(payload, msgId, AgentEventType[type] ?? ""));
  }

  async #publish(payload: Uint8Array, msgId: string, typeName: string): Promise<void> {
    const attempts = this.#opts.attempts ?? 5;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      try {
        await this.#opts.publish(this.#subject, payload, msgId);
        this.#opts.count?.("published");
        return;
      } catch (err) {
        last = err;
        if (i + 1 < attempts) await Bun.sleep(this.#opts.retryDelayMs ?? 500);
      }
    }
    this.#opts.count?.("lost");
    this.#opts.log.error(
      { err: last, msgId, type: typeName },
      "agent event not stored; counted lost",
    );
  }
}
