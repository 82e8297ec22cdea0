import type { DnsMessage } from "@periscope/flow";
import { BoundedMap } from "./bounded-map.ts";

/** Names kept per address at most. */
const MAX_NAMES_PER_IP = 16;
/** Shortest lifetime given to a name, s (answers with TTL 0 are still useful to the flows right after). */
const MIN_TTL_S = 5;

/**
 * Address → DNS names learnt from answers, each until its TTL runs out
 * (at least MIN_TTL_S), at most `capacity` addresses (least recently answered
 * go first). Names are lower case without the trailing dot, as Hubble shows
 * them in source_names / destination_names: the query and every CNAME target
 * of the chain that led to the address.
 */
export class DnsNameCache {
  private readonly byIp: BoundedMap<string, Map<string, number>>;

  constructor(capacity: number) {
    this.byIp = new BoundedMap(capacity);
  }

  /** Addresses held. */
  get size(): number {
    return this.byIp.size;
  }

  /** Addresses pushed out because the cache was full. */
  get evicted(): number {
    return this.byIp.evicted;
  }

  /**
   * Called with every address learnt from an answer here (not for `apply`), its
   * names and how long they hold, ms; set it to pass names on to other replicas.
   */
  onLearn: ((ip: string, names: readonly string[], ttlMs: number) => void) | undefined;

  /** Learns the addresses of a NOERROR response seen at `nowMs`. */
  learn(msg: DnsMessage, nowMs: number): void {
    if (!msg.qr || msg.rcode !== 0) return;
    const query = msg.questions[0]?.name;
    if (query === undefined) return;
    const chain = [query, ...msg.answers.flatMap((a) => (a.target ? [a.target] : []))];
    const names = [...new Set(chain.map((n) => (n.endsWith(".") ? n.slice(0, -1) : n)))];
    for (const a of msg.answers) {
      if (a.ip === undefined) continue;
      const ttlMs = Math.max(a.ttl, MIN_TTL_S) * 1000;
      this.apply(a.ip, names, ttlMs, nowMs);
      this.onLearn?.(a.ip, names, ttlMs);
    }
  }

  /**
   * Holds `names` (lower case, no trailing dot) for `ip` for `ttlMs` from `nowMs`
   * (at least MIN_TTL_S), bounded like names learnt from answers here.
   */
  apply(ip: string, names: readonly string[], ttlMs: number, nowMs: number): void {
    const expires = nowMs + Math.max(ttlMs, MIN_TTL_S * 1000);
    let held = this.byIp.get(ip, nowMs);
    if (held === undefined) {
      held = new Map();
      this.byIp.set(ip, held, nowMs);
    }
    for (const name of names) {
      const was = held.get(name) ?? 0;
      held.delete(name);
      held.set(name, Math.max(expires, was));
      if (held.size > MAX_NAMES_PER_IP) {
        const oldest = held.keys().next();
        if (!oldest.done) held.delete(oldest.value);
      }
    }
  }

  /** Names of `ip` still valid at `nowMs`, sorted; undefined when the address has none. */
  names(ip: string, nowMs: number): string[] | undefined {
    const held = this.byIp.peek(ip);
    if (held === undefined) return undefined;
    const out: string[] = [];
    for (const [name, expires] of held) {
      if (expires > nowMs) out.push(name);
      else held.delete(name);
    }
    if (held.size === 0) this.byIp.delete(ip);
    return out.length > 0 ? out.sort() : undefined;
  }
}
