import type { PresenceBeat } from "./presence-beat.ts";

/** Options for {@link PresenceTable}. */
export interface PresenceTableOptions {
  /** An instance is stale after this many of its heartbeat intervals without one (default 3). */
  readonly staleIntervals?: number;
  /** A lost instance nobody replaced is dropped after this long, ms (default 600000). */
  readonly forgetAfterMs?: number;
  /**
   * Services that must have a live instance, each with what its absence means
   * (e.g. `{ enricher: "flows are not being decoded" }`).
   */
  readonly required?: Readonly<Record<string, string>>;
  /** Required services count as missing only once the table is this old, ms (default 3000). */
  readonly graceMs?: number;
}

/** live: heartbeats arrive; stale: they stopped; exited: a supervisor saw the process die. */
export type InstanceState = "live" | "stale" | "exited";

/** One instance as the table sees it. */
export interface InstanceStatus {
  readonly service: string;
  readonly node: string;
  readonly instance: string;
  readonly pid: number;
  readonly state: InstanceState;
  /** ms since the last heartbeat (or since the exit report) arrived. */
  readonly ageMs: number;
}

/** ok: every known instance live; degraded: some lost; missing: none live. */
export type ServiceState = "ok" | "degraded" | "missing";

/** One service across all nodes. */
export interface ServiceStatus {
  readonly service: string;
  readonly state: ServiceState;
  /** Live instances. */
  readonly live: number;
  /** Instances that went away without saying goodbye and were not replaced. */
  readonly lost: readonly InstanceStatus[];
  /** Nodes where an instance was lost and none is live now. */
  readonly nodesWithout: readonly string[];
}

/** The whole picture: `degraded` when any service is not ok; `problems` say why, one line each. */
export interface PresenceReport {
  readonly state: "ok" | "degraded";
  readonly services: readonly ServiceStatus[];
  readonly problems: readonly string[];
}

interface Entry {
  beat: PresenceBeat;
  receivedMs: number;
  exitedMs: number | undefined;
}

const key = (b: PresenceBeat): string => `${b.service}\u0000${b.node}\u0000${b.instance}`;

/** "3s", "250ms", "2m5s" */
function age(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/**
 * Which service instances are alive, from their heartbeats. An instance that stops
 * beating (or is reported exited) stays listed as lost until a newer instance of the
 * same service starts on the same node, or `forgetAfterMs` passes; one that said
 * "stopping" is removed at once. Pure: the caller passes the time.
 */
export class PresenceTable {
  readonly #entries = new Map<string, Entry>();
  readonly #staleIntervals: number;
  readonly #forgetAfterMs: number;
  readonly #required: Readonly<Record<string, string>>;
  readonly #graceUntilMs: number;

  constructor(opts: PresenceTableOptions = {}, nowMs: number = Date.now()) {
    this.#staleIntervals = opts.staleIntervals ?? 3;
    this.#forgetAfterMs = opts.forgetAfterMs ?? 600_000;
    this.#required = opts.required ?? {};
    this.#graceUntilMs = nowMs + (opts.graceMs ?? 3000);
  }

  /** Records one beat received at `nowMs`. */
  observe(beat: PresenceBeat, nowMs: number = Date.now()): void {
    const k = key(beat);
    const entry = this.#entries.get(k);
    if (beat.state === "stopping") {
      this.#entries.delete(k);
    } else if (beat.state === "exited") {
      if (entry) entry.exitedMs ??= nowMs;
      else this.#entries.set(k, { beat, receivedMs: nowMs, exitedMs: nowMs });
    } else if (entry) {
      entry.beat = beat;
      entry.receivedMs = nowMs;
    } else {
      this.#entries.set(k, { beat, receivedMs: nowMs, exitedMs: undefined });
    }
  }

  #state(e: Entry, nowMs: number): InstanceState {
    if (e.exitedMs !== undefined) return "exited";
    return nowMs - e.receivedMs > this.#staleIntervals * e.beat.intervalMs ? "stale" : "live";
  }

  /** The latest beat of each instance whose heartbeats still arrive at `nowMs`. */
  live(nowMs: number = Date.now()): PresenceBeat[] {
    const out: PresenceBeat[] = [];
    for (const e of this.#entries.values()) {
      if (this.#state(e, nowMs) === "live") out.push(e.beat);
    }
    return out;
  }

  /** The report at `nowMs`; drops lost instances that were replaced or are too old. */
  report(nowMs: number = Date.now()): PresenceReport {
    const byService = new Map<string, { live: Entry[]; lost: Entry[] }>();
    for (const [k, e] of this.#entries) {
      const state = this.#state(e, nowMs);
      if (state !== "live" && nowMs - (e.exitedMs ?? e.receivedMs) > this.#forgetAfterMs) {
        this.#entries.delete(k);
        continue;
      }
      let group = byService.get(e.beat.service);
      if (!group) {
        group = { live: [], lost: [] };
        byService.set(e.beat.service, group);
      }
      (state === "live" ? group.live : group.lost).push(e);
    }
    for (const service of Object.keys(this.#required)) {
      if (!byService.has(service) && nowMs >= this.#graceUntilMs) {
        byService.set(service, { live: [], lost: [] });
      }
    }
    const services: ServiceStatus[] = [];
    const problems: string[] = [];
    for (const [service, group] of [...byService].sort(([a], [b]) => a.localeCompare(b))) {
      const lost = this.#unreplaced(group.live, group.lost);
      const liveNodes = new Set(group.live.map((e) => e.beat.node));
      const status: ServiceStatus = {
        service,
        state: group.live.length === 0 ? "missing" : lost.length > 0 ? "degraded" : "ok",
        live: group.live.length,
        lost: lost.map((e) => ({
          service,
          node: e.beat.node,
          instance: e.beat.instance,
          pid: e.beat.pid,
          state: this.#state(e, nowMs),
          ageMs: nowMs - (e.exitedMs ?? e.receivedMs),
        })),
        nodesWithout: [...new Set(lost.map((e) => e.beat.node))].filter((n) => !liveNodes.has(n)),
      };
      services.push(status);
      if (status.state !== "ok") problems.push(this.#problem(status));
    }
    return { state: problems.length > 0 ? "degraded" : "ok", services, problems };
  }

  /**
   * Lost entries without a replacement: each is paired with a distinct live instance on
   * the same node that started after the lost one's last beat (both times from that
   * node's clock); paired ones are removed from the table.
   */
  #unreplaced(live: readonly Entry[], lost: readonly Entry[]): Entry[] {
    const free = [...live].sort((a, b) => a.beat.startedMs - b.beat.startedMs);
    const left: Entry[] = [];
    for (const e of [...lost].sort((a, b) => a.beat.sentMs - b.beat.sentMs)) {
      const i = free.findIndex(
        (l) => l.beat.node === e.beat.node && l.beat.startedMs > e.beat.sentMs,
      );
      if (i >= 0) {
        free.splice(i, 1);
        this.#entries.delete(key(e.beat));
      } else {
        left.push(e);
      }
    }
    return left;
  }

  #problem(s: ServiceStatus): string {
    const lost = s.lost.map(
      (i) =>
        `${i.node}/${i.instance} ${i.state === "exited" ? `exited ${age(i.ageMs)} ago` : `silent for ${age(i.ageMs)}`}`,
    );
    const detail = lost.length > 0 ? `: ${lost.join(", ")}` : "";
    if (s.state === "missing") {
      const impact = this.#required[s.service];
      return `${s.service}: no live instance${impact ? ` (${impact})` : ""}${detail}`;
    }
    return `${s.service}: ${s.lost.length} of ${s.lost.length + s.live} instances lost${detail}`;
  }
}
