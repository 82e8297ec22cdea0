/**
 * `periscope.telemetry.v1.Telemetry/Subscribe`: filtered process, container, flow and drop
 * events, one independent queue per subscriber. The hub ({@link TelemetryHub}) fans each
 * event out to the subscriptions whose filters match; a subscription's throttle, limit and
 * time range apply to it alone, and what it loses (throttled, or its queue full because it
 * reads slowly) is reported to it in order as `lost` events.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type processV1, telemetryV1 } from "@periscope/proto";

const { EventKind, LostReason, LostTelemetrySchema, TelemetryEventSchema } = telemetryV1;
type TelemetryEvent = telemetryV1.TelemetryEvent;
type Subscription = telemetryV1.Subscription;

/** Events queued per subscriber before it loses events (default). */
export const DEFAULT_SUBSCRIBER_QUEUE = 4096;
/** Most container or process filters in one subscription. */
export const MAX_SUBSCRIPTION_FILTERS = 64;

/** What the hub knows about an event, computed once and matched by every subscription. */
export interface EventFacts {
  readonly kind: telemetryV1.EventKind;
  readonly node: string;
  /** Wall-clock ms. */
  readonly timeMs: number;
  readonly process?: processV1.Process | undefined;
  readonly container?: processV1.Container | undefined;
}

/** Thrown by {@link compileSubscription}: `field` names what was wrong. */
export class SubscriptionError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "SubscriptionError";
  }
}

/** `*` any run of characters (also `/`), `?` one character, the rest literal. */
export function globRegExp(glob: string): RegExp {
  let src = "";
  for (const ch of glob) {
    if (ch === "*") src += ".*";
    else if (ch === "?") src += ".";
    else src += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${src}$`);
}

type Pred = (f: EventFacts) => boolean;

/** A validated subscription, ready to match. */
export interface CompiledSubscription {
  readonly kinds: ReadonlySet<number>;
  readonly match: Pred;
  readonly throttle?: { readonly events: number; readonly intervalMs: number } | undefined;
  readonly limit: number;
  readonly sinceMs?: number | undefined;
  readonly untilMs?: number | undefined;
}

const KIND_VALUES = new Set<number>([
  EventKind.PROCESS_EXEC,
  EventKind.PROCESS_FORK,
  EventKind.PROCESS_EXIT,
  EventKind.CONTAINER,
  EventKind.FLOW,
  EventKind.DROP,
]);

/** Process kinds (what a source loss at the process ring concerns). */
export const PROCESS_KINDS: readonly number[] = [
  EventKind.PROCESS_EXEC,
  EventKind.PROCESS_FORK,
  EventKind.PROCESS_EXIT,
];

function tsMs(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampMs(ts);
}

/**
 * Validates and compiles a subscription.
 * @throws SubscriptionError naming the field (`events[1]`, `containers[0].id`,
 *   `throttle.interval`, `until`, …).
 */
export function compileSubscription(sub: Subscription): CompiledSubscription {
  const kinds = new Set<number>();
  sub.events.forEach((k, i) => {
    if (!KIND_VALUES.has(k)) throw new SubscriptionError(`events[${i}]`, `unknown event kind ${k}`);
    kinds.add(k);
  });
  if (kinds.size === 0) for (const k of KIND_VALUES) kinds.add(k);
  if (sub.containers.length > MAX_SUBSCRIPTION_FILTERS) {
    throw new SubscriptionError("containers", `at most ${MAX_SUBSCRIPTION_FILTERS} filters`);
  }
  if (sub.processes.length > MAX_SUBSCRIPTION_FILTERS) {
    throw new SubscriptionError("processes", `at most ${MAX_SUBSCRIPTION_FILTERS} filters`);
  }
  const containerPreds = sub.containers.map((c, i): Pred => {
    if (c.id === "" && c.name === "" && c.image === "") {
      throw new SubscriptionError(`containers[${i}]`, "set id, name or image");
    }
    if (c.id !== "" && !/^[0-9a-f]{4,64}$/.test(c.id)) {
      throw new SubscriptionError(`containers[${i}].id`, `"${c.id}" is not 4 to 64 hex digits`);
    }
    const name = c.name === "" ? undefined : globRegExp(c.name.replace(/^\//, ""));
    const image = c.image === "" ? undefined : globRegExp(c.image);
    return (f) => {
      const ct = f.container ?? f.process?.container;
      if (ct === undefined || ct.id === "") return false;
      if (c.id !== "" && !ct.id.startsWith(c.id)) return false;
      if (name && !name.test(ct.name)) return false;
      if (image && !image.test(ct.image)) return false;
      return true;
    };
  });
  const processPreds = sub.processes.map((p, i): Pred => {
    if (p.binary === "" && p.uid === undefined && p.pid === 0) {
      throw new SubscriptionError(`processes[${i}]`, "set binary, uid or pid");
    }
    const bin = p.binary === "" ? undefined : globRegExp(p.binary);
    const baseOnly = p.binary !== "" && !p.binary.includes("/");
    return (f) => {
      const pr = f.process;
      if (pr === undefined) return false;
      if (bin) {
        const b = baseOnly ? pr.binary.slice(pr.binary.lastIndexOf("/") + 1) : pr.binary;
        if (!bin.test(b)) return false;
      }
      if (p.uid !== undefined && pr.uid !== p.uid) return false;
      if (p.pid !== 0 && pr.tgid !== p.pid) return false;
      return true;
    };
  });
  let throttle: CompiledSubscription["throttle"];
  if (sub.throttle !== undefined) {
    if (sub.throttle.events === 0)
      throw new SubscriptionError("throttle.events", "must be at least 1");
    const ms = sub.throttle.interval === undefined ? 0 : durationMs(sub.throttle.interval);
    if (!(ms >= 1)) throw new SubscriptionError("throttle.interval", "must be at least 1ms");
    throttle = { events: sub.throttle.events, intervalMs: ms };
  }
  const sinceMs = tsMs(sub.since);
  const untilMs = tsMs(sub.until);
  if (sinceMs !== undefined && untilMs !== undefined && untilMs < sinceMs) {
    throw new SubscriptionError("until", "is before since");
  }
  const nodes = new Set(sub.nodeNames);
  sub.nodeNames.forEach((n, i) => {
    if (n === "") throw new SubscriptionError(`node_names[${i}]`, "empty node name");
  });
  const match: Pred = (f) => {
    if (!kinds.has(f.kind)) return false;
    if (nodes.size > 0 && !nodes.has(f.node)) return false;
    if (sinceMs !== undefined && f.timeMs < sinceMs) return false;
    if (containerPreds.length > 0 && !containerPreds.some((p) => p(f))) return false;
    if (processPreds.length > 0 && !processPreds.some((p) => p(f))) return false;
    return true;
  };
  return { kinds, match, throttle, limit: Number(sub.limit), sinceMs, untilMs };
}

function lostEvent(reason: telemetryV1.LostReason, count: number, node: string): TelemetryEvent {
  return create(TelemetryEventSchema, {
    time: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: (Date.now() % 1000) * 1e6 },
    nodeName: node,
    event: { case: "lost", value: create(LostTelemetrySchema, { reason, count: BigInt(count) }) },
  });
}

/** One subscription's queue, throttle and losses. */
export class Subscriber {
  readonly #queue: TelemetryEvent[] = [];
  readonly #capacity: number;
  #wake: (() => void) | undefined;
  #windowStart = 0;
  #inWindow = 0;
  #throttled = 0;
  #slowLost = 0;
  #ended = false;
  readonly #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly sub: CompiledSubscription,
    readonly node: string,
    capacity = DEFAULT_SUBSCRIBER_QUEUE,
  ) {
    this.#capacity = capacity;
    if (sub.throttle) {
      const t = sub.throttle;
      this.#timer = setInterval(() => this.#roll(Date.now()), Math.max(t.intervalMs, 10));
    }
  }

  /** Events this subscriber lost because its queue was full, so far. */
  get slowLost(): number {
    return this.#slowLost;
  }

  /** Offers a matching event: queued, throttled or lost (queue full). */
  offer(ev: TelemetryEvent): void {
    if (this.#ended) return;
    const t = this.sub.throttle;
    if (t) {
      const now = Date.now();
      if (now - this.#windowStart >= t.intervalMs) this.#roll(now);
      if (this.#inWindow >= t.events) {
        this.#throttled++;
        return;
      }
      this.#inWindow++;
    }
    this.#push(ev, LostReason.SLOW_SUBSCRIBER);
  }

  /** A loss the subscriber must hear about (source losses, throttle reports). */
  report(reason: telemetryV1.LostReason, count: number): void {
    if (this.#ended || count <= 0) return;
    const last = this.#queue[this.#queue.length - 1];
    if (last?.event.case === "lost" && last.event.value.reason === reason) {
      last.event.value.count += BigInt(count);
    } else {
      this.#queue.push(lostEvent(reason, count, this.node));
    }
    this.#wake?.();
  }

  #push(ev: TelemetryEvent, reason: telemetryV1.LostReason): void {
    if (this.#queue.length >= this.#capacity) {
      this.#slowLost++;
      // One lost marker past the capacity, after the events queued before the loss.
      this.report(reason, 1);
      return;
    }
    this.#queue.push(ev);
    this.#wake?.();
  }

  #roll(now: number): void {
    const t = this.sub.throttle;
    if (!t || now - this.#windowStart < t.intervalMs) return;
    this.#windowStart = now;
    this.#inWindow = 0;
    if (this.#throttled > 0) {
      const n = this.#throttled;
      this.#throttled = 0;
      this.report(LostReason.THROTTLED, n);
    }
  }

  /** Next queued event; undefined when ended or `signal` aborts. */
  async next(signal: AbortSignal): Promise<TelemetryEvent | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      const ev = this.#queue.shift();
      if (ev) return ev;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.#wake = undefined;
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Ends the subscription: pending throttled events are reported first. */
  end(): void {
    if (this.#ended) return;
    if (this.#throttled > 0) {
      this.report(LostReason.THROTTLED, this.#throttled);
      this.#throttled = 0;
    }
    this.#ended = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#wake?.();
  }

  /** Drains what is queued (after {@link end}); used to flush the last reports. */
  drain(): TelemetryEvent[] {
    return this.#queue.splice(0);
  }
}

/** Fans events out to the open subscriptions. */
export class TelemetryHub {
  readonly #subs = new Set<Subscriber>();
  readonly #listeners = new Set<() => void>();
  #delivered = 0;

  constructor(
    readonly node: string,
    readonly queueCapacity = DEFAULT_SUBSCRIBER_QUEUE,
  ) {}

  /** Open subscriptions. */
  get size(): number {
    return this.#subs.size;
  }

  /** Events handed to subscriber queues so far. */
  get delivered(): number {
    return this.#delivered;
  }

  /** True when some open subscription asks for `kind` (sources skip work otherwise). */
  wants(kind: number): boolean {
    for (const s of this.#subs) if (s.sub.kinds.has(kind)) return true;
    return false;
  }

  /** Called whenever the set of subscriptions changes. */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Opens a subscription. */
  open(sub: CompiledSubscription): Subscriber {
    const s = new Subscriber(sub, this.node, this.queueCapacity);
    this.#subs.add(s);
    for (const fn of this.#listeners) fn();
    return s;
  }

  /** Closes a subscription. */
  close(s: Subscriber): void {
    s.end();
    if (this.#subs.delete(s)) for (const fn of this.#listeners) fn();
  }

  /** Offers an event to every matching subscription; `build` runs only if one matches. */
  publish(facts: EventFacts, build: () => TelemetryEvent): void {
    let ev: TelemetryEvent | undefined;
    for (const s of this.#subs) {
      if (!s.sub.match(facts)) continue;
      if (s.sub.untilMs !== undefined && facts.timeMs >= s.sub.untilMs) {
        s.end();
        continue;
      }
      ev ??= build();
      s.offer(ev);
      this.#delivered++;
    }
  }

  /** Reports `count` events lost before the observer to subscriptions asking for `kinds`. */
  reportSourceLoss(kinds: readonly number[], count: number): void {
    for (const s of this.#subs) {
      if (kinds.some((k) => s.sub.kinds.has(k))) s.report(LostReason.SOURCE, count);
    }
  }

  /** Ends every subscription (observer stopping). */
  closeAll(): void {
    for (const s of [...this.#subs]) this.close(s);
  }
}

/** The Telemetry service on `hub`. */
export function createTelemetryService(
  hub: TelemetryHub,
): ServiceImpl<typeof telemetryV1.Telemetry> {
  return {
    async *subscribe(req: Subscription, ctx: HandlerContext) {
      let compiled: CompiledSubscription;
      try {
        compiled = compileSubscription(req);
      } catch (err) {
        if (err instanceof SubscriptionError) {
          throw new ConnectError(err.message, Code.InvalidArgument);
        }
        throw err;
      }
      const s = hub.open(compiled);
      let untilTimer: ReturnType<typeof setTimeout> | undefined;
      if (compiled.untilMs !== undefined) {
        untilTimer = setTimeout(() => s.end(), Math.max(0, compiled.untilMs - Date.now()));
      }
      try {
        let sent = 0;
        for (;;) {
          const ev = await s.next(ctx.signal);
          if (ev === undefined) break;
          yield ev;
          if (ev.event.case !== "lost" && compiled.limit > 0 && ++sent >= compiled.limit) {
            s.end();
            break;
          }
        }
        if (!ctx.signal.aborted) {
          for (const ev of s.drain()) if (ev.event.case === "lost") yield ev;
        }
      } finally {
        if (untilTimer) clearTimeout(untilTimer);
        hub.close(s);
      }
    },
  };
}
