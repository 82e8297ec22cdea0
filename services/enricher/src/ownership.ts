import type { KV } from "@nats-io/kv";
import {
  claimLease,
  fairShare,
  liveKeys,
  putBeat,
  releaseLease,
  renewLease,
  sanitizeToken,
} from "@periscope/bus";
import { errorReason, type Logger } from "@periscope/telemetry";

/** How partition ownership changed: taken, given up on purpose, or lost (expired or taken over). */
export type OwnershipChange = "acquired" | "released" | "lost";

/** What {@link PartitionOwnership} needs around it. */
export interface PartitionOwnershipOptions {
  /** The lease bucket (max_age = `ttlMs`). */
  readonly kv: KV;
  /** Unique id of this process (see {@link holderId}). */
  readonly holder: string;
  /** Partitions 0 … partitions-1 are shared out. */
  readonly partitions: number;
  /** The bucket's TTL: a lease not renewed this long is gone, ms. */
  readonly ttlMs: number;
  /** Interval of renewals and rebalancing, ms (default ttlMs / 3). */
  readonly beatMs?: number;
  readonly log: Logger;
  /** Starts reading partition `p`; a rejection gives the lease back. */
  start(p: number): Promise<void>;
  /**
   * Stops reading partition `p` (stops taking messages; what it was handed and has not
   * begun goes back to the stream). Called before a release and after a loss.
   */
  stop(p: number, change: Exclude<OwnershipChange, "acquired">): Promise<void>;
  /** Counts and reports one change (after it took effect). */
  changed?(change: OwnershipChange, p: number): void;
  /** A renewal, membership beat or claim failed for another reason than a lost race. */
  failed?(what: string, err: unknown): void;
}

interface Held {
  revision: number;
  /** Until when the lease is surely still ours (sent time of the last renewal + TTL). */
  validUntil: number;
}

/** KV key of partition `p`'s lease. */
export const leaseKey = (p: number): string => `partition.${p}`;
/** KV key of one member's beat. */
export const memberKey = (holder: string): string => `member.${holder}`;

/** A process-unique holder id usable as a KV key token. */
export function holderId(node: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  return `${sanitizeToken(node)}-${process.pid}-${rand[0]?.toString(36)}${rand[1]?.toString(36)}`;
}

/**
 * Shares raw partitions among live enrichers through leases in a NATS KV bucket. Every
 * beat a member renews its leases (revision-checked), writes its membership beat,
 * reads the member list and moves toward its fair share (see `fairShare`): extras are
 * stopped and released at once so another member can claim them; free partitions
 * (never held, released, or expired because their holder died) are claimed. A lease
 * this process fails to renew is dropped when its renewal is refused, or when it could
 * not be renewed for a whole TTL (e.g. the broker was unreachable).
 */
export class PartitionOwnership {
  readonly #o: PartitionOwnershipOptions;
  readonly #beatMs: number;
  readonly #held = new Map<number, Held>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #members = 1;
  /** Whether the last beat ended holding exactly the fair share. */
  #balanced = false;
  readonly #listeners = new Set<(change: OwnershipChange, p: number) => void>();

  constructor(opts: PartitionOwnershipOptions) {
    this.#o = opts;
    this.#beatMs = opts.beatMs ?? Math.max(50, Math.floor(opts.ttlMs / 3));
  }

  /** Partitions this process holds, ascending. */
  owned(): number[] {
    return [...this.#held.keys()].sort((a, b) => a - b);
  }

  /** Live members seen at the last beat (this one included). */
  get members(): number {
    return this.#members;
  }

  /** True while partition `p`'s lease is surely this process's (its messages may be used). */
  holds(p: number): boolean {
    const h = this.#held.get(p);
    return h !== undefined && h.validUntil > Date.now();
  }

  /**
   * Calls `listener` after each change (after the `changed` option); returns the function
   * that removes it. A listener's exception is reported through `failed`.
   */
  onChange(listener: (change: OwnershipChange, p: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(change: OwnershipChange, p: number): void {
    this.#o.changed?.(change, p);
    for (const l of this.#listeners) {
      try {
        l(change, p);
      } catch (err) {
        this.#o.failed?.("listener", err);
      }
    }
  }

  /** Whether this member held its fair share at the last beat. */
  get balanced(): boolean {
    return this.#balanced;
  }

  /**
   * Beats until this member holds its fair share (others release extras on their next
   * beat; a dead predecessor's leases expire after one TTL) or `settleMs` passed
   * (default two TTLs), then beats on in the background. So a member that reports ready
   * is reading its share and the others no longer read it.
   */
  async start(settleMs: number = 2 * this.#o.ttlMs): Promise<void> {
    const deadline = Date.now() + settleMs;
    await this.beat();
    while (!this.#balanced && !this.#stopped && Date.now() < deadline) {
      await Bun.sleep(this.#fastMs());
      await this.beat();
    }
    this.#schedule();
  }

  /** One beat: renew, announce, rebalance. Never rejects. Exposed for tests. */
  beat(): Promise<void> {
    this.#running ??= this.#beat().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Stops beating, stops and releases every partition, removes the membership. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    await Promise.all(this.owned().map((p) => this.#release(p)));
    await this.#o.kv.delete(memberKey(this.#o.holder)).catch((err: unknown) => {
      this.#o.failed?.("membership", err);
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(
      () => {
        void this.beat().then(() => this.#schedule());
      },
      this.#balanced ? this.#beatMs : this.#fastMs(),
    );
  }

  /** Beat interval while unbalanced: partitions released by others are taken soon. */
  #fastMs(): number {
    return Math.max(20, Math.floor(this.#beatMs / 5));
  }

  async #beat(): Promise<void> {
    if (this.#stopped) return;
    await this.#renewAll();
    const { kv, holder, partitions } = this.#o;
    let members: string[];
    try {
      await putBeat(kv, memberKey(holder), holder);
      members = (await liveKeys(kv, "member.")).map((k) => k.slice("member.".length));
    } catch (err) {
      this.#o.failed?.("membership", err);
      return;
    }
    if (!members.includes(holder)) members.push(holder);
    members.sort();
    this.#members = members.length;
    const target = fairShare(partitions, members.length, members.indexOf(holder));
    if (this.#stopped) return;
    if (this.#held.size > target) {
      // Give up the highest partitions: the others' choice does not depend on which.
      const extra = this.owned().slice(target);
      await Promise.all(extra.map((p) => this.#release(p)));
    } else if (this.#held.size < target) {
      await this.#claim(target - this.#held.size);
    }
    this.#balanced = this.#held.size === target;
  }

  async #renewAll(): Promise<void> {
    const { kv, holder, ttlMs } = this.#o;
    await Promise.all(
      [...this.#held].map(async ([p, h]) => {
        const sentAt = Date.now();
        let revision: number | undefined;
        try {
          revision = await renewLease(kv, leaseKey(p), holder, h.revision);
        } catch (err) {
          this.#o.failed?.("renew", err);
          if (h.validUntil <= Date.now()) await this.#lose(p, "not renewed within its TTL");
          return;
        }
        if (revision === undefined) {
          await this.#lose(p, "renewal refused: expired or taken over");
          return;
        }
        h.revision = revision;
        h.validUntil = sentAt + ttlMs;
      }),
    );
  }

  async #claim(need: number): Promise<void> {
    const { kv, holder, partitions, ttlMs } = this.#o;
    const candidates: number[] = [];
    for (let p = 0; p < partitions; p++) if (!this.#held.has(p)) candidates.push(p);
    const free = (
      await Promise.all(
        candidates.map(async (p) => {
          try {
            const e = await kv.get(leaseKey(p));
            return e === null || e.operation !== "PUT" ? p : undefined;
          } catch (err) {
            this.#o.failed?.("lookup", err);
            return undefined;
          }
        }),
      )
    ).filter((p): p is number => p !== undefined);
    // Random order: members that start together rarely race for the same keys.
    for (let i = free.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [free[i], free[j]] = [free[j] as number, free[i] as number];
    }
    await Promise.all(
      free.slice(0, need).map(async (p) => {
        const sentAt = Date.now();
        let revision: number | undefined;
        try {
          revision = await claimLease(kv, leaseKey(p), holder);
        } catch (err) {
          this.#o.failed?.("claim", err);
          return;
        }
        if (revision === undefined || this.#stopped) {
          if (revision !== undefined) await releaseLease(kv, leaseKey(p), revision).catch(() => {});
          return;
        }
        this.#held.set(p, { revision, validUntil: sentAt + ttlMs });
        try {
          await this.#o.start(p);
        } catch (err) {
          this.#held.delete(p);
          this.#o.failed?.("start", err);
          await releaseLease(kv, leaseKey(p), revision).catch(() => {});
          return;
        }
        this.#o.log.info({ partition: p, members: this.#members }, "partition acquired");
        this.#changed("acquired", p);
      }),
    );
  }

  async #release(p: number): Promise<void> {
    const h = this.#held.get(p);
    if (h === undefined) return;
    this.#held.delete(p);
    await this.#o.stop(p, "released");
    try {
      await releaseLease(this.#o.kv, leaseKey(p), h.revision);
    } catch (err) {
      // Not given back: it expires after one TTL instead.
      this.#o.failed?.("release", err);
    }
    this.#o.log.info({ partition: p, members: this.#members }, "partition released");
    this.#changed("released", p);
  }

  async #lose(p: number, why: string): Promise<void> {
    if (!this.#held.delete(p)) return;
    await this.#o.stop(p, "lost");
    this.#o.log.warn({ partition: p, why }, "partition lease lost");
    this.#changed("lost", p);
  }
}

/** One line for a failed lease operation, for callers' logs. */
export function leaseFailure(what: string, err: unknown): string {
  return `${what}: ${errorReason(err)}`;
}
