import { isIP } from "node:net";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { DnsNameCache } from "./dns-cache.ts";

/**
 * Core NATS subject on which enrichers pass each other the address → name
 * pairs they learn from DNS answers (see docs/internals.md, "DNS names across
 * enrichers").
 */
export const DNS_NAMES_SUBJECT = "periscope.dnsnames";
/** Version written in, and required of, every message. */
export const DNS_NAMES_VERSION = 1;
/** Entries one message carries at most (more are sent in further messages). */
export const MAX_ENTRIES_PER_MESSAGE = 512;
/** Names one entry carries at most. */
const MAX_NAMES_PER_ENTRY = 16;
/** Longest lifetime accepted, ms (the largest DNS TTL, 2^31-1 s). */
const MAX_TTL_MS = 2_147_483_647_000;
/** A DNS name: lower case, no trailing dot, at most 253 characters. */
const NAME_RE = /^[a-z0-9_*](?:[a-z0-9_.*-]{0,251}[a-z0-9_*-])?$/;

/** One learnt address: its names and how long they still hold, ms. */
export interface DnsNameEntry {
  readonly ip: string;
  readonly names: readonly string[];
  readonly ttlMs: number;
}

/** A decoded message: who sent it and what it learnt. */
export interface DnsNamesMessage {
  /** The sending replica's instance id (its own messages come back to it and are skipped). */
  readonly from: string;
  readonly entries: readonly DnsNameEntry[];
}

/** Thrown by decodeDnsNames for a message that is not a valid one; the message says what was wrong. */
export class BadDnsNamesMessage extends Error {
  override readonly name = "BadDnsNamesMessage";
}

/**
 * Encodes `{"v":1,"from":"<id>","e":[["<ip>",<ttlMs>,["<name>",…]],…]}` as
 * UTF-8 JSON. TTLs are relative so replicas need no common clock.
 */
export function encodeDnsNames(msg: DnsNamesMessage): Uint8Array {
  const e = msg.entries.map((x) => [x.ip, Math.round(x.ttlMs), x.names]);
  return new TextEncoder().encode(JSON.stringify({ v: DNS_NAMES_VERSION, from: msg.from, e }));
}

function fail(what: string): never {
  throw new BadDnsNamesMessage(what);
}

/** Decodes and checks a message written by encodeDnsNames; throws BadDnsNamesMessage naming the fault. */
export function decodeDnsNames(data: Uint8Array): DnsNamesMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    fail("not UTF-8 JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("not a JSON object");
  const obj = raw as Record<string, unknown>;
  if (obj.v !== DNS_NAMES_VERSION)
    fail(`version ${JSON.stringify(obj.v)}, want ${DNS_NAMES_VERSION}`);
  const from = obj.from;
  if (typeof from !== "string" || from.length === 0 || from.length > 200) fail("from: not an id");
  const list = obj.e;
  if (!Array.isArray(list)) fail("e: not an array");
  if (list.length > MAX_ENTRIES_PER_MESSAGE)
    fail(`e: ${list.length} entries, at most ${MAX_ENTRIES_PER_MESSAGE}`);
  const entries = list.map((item: unknown, i): DnsNameEntry => {
    if (!Array.isArray(item) || item.length !== 3) fail(`e[${i}]: not [ip, ttlMs, names]`);
    const [ip, ttlMs, names] = item as unknown[];
    if (typeof ip !== "string" || isIP(ip) === 0)
      fail(`e[${i}]: ip ${JSON.stringify(ip)} is not an address`);
    if (typeof ttlMs !== "number" || !Number.isInteger(ttlMs) || ttlMs < 0 || ttlMs > MAX_TTL_MS) {
      fail(`e[${i}]: ttlMs ${JSON.stringify(ttlMs)} out of range`);
    }
    if (!Array.isArray(names) || names.length === 0 || names.length > MAX_NAMES_PER_ENTRY) {
      fail(`e[${i}]: names must be 1..${MAX_NAMES_PER_ENTRY} names`);
    }
    for (const n of names) {
      if (typeof n !== "string" || !NAME_RE.test(n)) fail(`e[${i}]: bad name ${JSON.stringify(n)}`);
    }
    return { ip, ttlMs, names: names as string[] };
  });
  return { from, entries };
}

/** Counts kept by a DnsNameShare. */
export interface DnsShareCounts {
  /** Entries published. */
  sent: number;
  /** Entries applied from other replicas. */
  applied: number;
  /** Messages refused as malformed. */
  bad: number;
  /** Publishes that failed (connection closed): those entries stay local only. */
  publishFailed: number;
}

/** Options of startDnsNameShare. */
export interface DnsShareOptions {
  readonly nc: NatsConnection;
  readonly cache: DnsNameCache;
  /** This replica's instance id; must differ between replicas. */
  readonly instanceId: string;
  readonly subject?: string;
  /** Called for each refused message with what was wrong. */
  readonly onBad?: (reason: string) => void;
  readonly now?: () => number;
}

/** A running exchange of learnt names. */
export interface DnsNameShare {
  readonly counts: DnsShareCounts;
  /** Sends what is queued, stops listening and publishing. */
  stop(): Promise<void>;
}

/**
 * Publishes every address the cache learns from an answer here (queued within
 * the current turn of the event loop, one message per up to
 * MAX_ENTRIES_PER_MESSAGE entries) and applies the entries of other replicas to
 * the cache. Never throws for bad input: counts it and reports it to `onBad`.
 */
export function startDnsNameShare(opts: DnsShareOptions): DnsNameShare {
  const subject = opts.subject ?? DNS_NAMES_SUBJECT;
  const now = opts.now ?? Date.now;
  const counts: DnsShareCounts = { sent: 0, applied: 0, bad: 0, publishFailed: 0 };
  let queue: DnsNameEntry[] = [];
  let scheduled = false;
  let stopped = false;

  const flush = (): void => {
    scheduled = false;
    while (queue.length > 0) {
      const entries = queue.slice(0, MAX_ENTRIES_PER_MESSAGE);
      queue = queue.slice(entries.length);
      try {
        opts.nc.publish(subject, encodeDnsNames({ from: opts.instanceId, entries }));
        counts.sent += entries.length;
      } catch {
        counts.publishFailed += entries.length;
      }
    }
  };
  opts.cache.onLearn = (ip, names, ttlMs) => {
    if (stopped) return;
    queue.push({ ip, names: [...names], ttlMs });
    if (queue.length >= MAX_ENTRIES_PER_MESSAGE) flush();
    else if (!scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
  };

  const sub: Subscription = opts.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      let decoded: DnsNamesMessage;
      try {
        decoded = decodeDnsNames(msg.data);
      } catch (e) {
        counts.bad++;
        opts.onBad?.(e instanceof Error ? e.message : String(e));
        return;
      }
      if (decoded.from === opts.instanceId) return;
      const t = now();
      for (const x of decoded.entries) opts.cache.apply(x.ip, x.names, x.ttlMs, t);
      counts.applied += decoded.entries.length;
    },
  });

  return {
    counts,
    async stop() {
      if (stopped) return;
      stopped = true;
      opts.cache.onLearn = undefined;
      flush();
      sub.unsubscribe();
    },
  };
}
