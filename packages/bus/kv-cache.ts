import { type KV, type KvWatchEntry, KvWatchInclude } from "@nats-io/kv";
import type { Bus } from "./connect.ts";

/** Options for {@link openKvCache}. */
export interface KvCacheOptions<T> {
  /** KV bucket, created (history 1) when missing. */
  readonly bucket: string;
  /** What an entry is, for log lines ("endpoint" → "skipping malformed endpoint entry"). */
  readonly what: string;
  /** Turns a stored value into a record; throws for values that cannot be used. */
  parse(key: string, value: unknown): T;
}

/** What every KV-backed registry offers besides its own put/delete/lookup. */
export interface KvRegistry<T> {
  /** Resolves once the entries present when the registry opened are in memory. */
  readonly ready: Promise<void>;
  /** Every entry currently known. */
  entries(): T[];
  /** Values in the bucket that could not be parsed (they are logged and skipped). */
  malformed(): number;
  /** Stops the watch. */
  close(): Promise<void>;
}

/** A KV bucket mirrored in memory by a watch. */
export interface KvCache<T> extends KvRegistry<T> {
  readonly kv: KV;
  /** Parsed entries by KV key, current as far as the watch has delivered. */
  readonly byKey: ReadonlyMap<string, T>;
}

/**
 * Opens (creating if missing) a KV bucket and mirrors it in memory: a watch that
 * includes history loads the existing entries first, then applies later puts and
 * deletes as they happen. Unparseable values are counted and logged, never fatal.
 */
export async function openKvCache<T>(bus: Bus, opts: KvCacheOptions<T>): Promise<KvCache<T>> {
  const kv: KV = await bus.kvm().create(opts.bucket, { history: 1 });
  const status = await kv.status();
  const lastSeq = status.streamInfo.state.last_seq;
  const byKey = new Map<string, T>();
  let bad = 0;
  const ready = Promise.withResolvers<void>();
  if (status.streamInfo.state.messages === 0) ready.resolve();

  const apply = (e: KvWatchEntry): void => {
    if (e.operation === "PUT") {
      try {
        byKey.set(e.key, opts.parse(e.key, e.json<unknown>()));
      } catch (err) {
        bad++;
        bus.log.warn({ err, key: e.key }, `skipping malformed ${opts.what} entry`);
      }
    } else {
      byKey.delete(e.key);
    }
    if (e.isUpdate || e.revision >= lastSeq) ready.resolve();
  };

  const watch = await kv.watch({ include: KvWatchInclude.AllHistory });
  const pump = (async () => {
    for await (const e of watch) apply(e);
  })().catch((err: unknown) => {
    bus.log.error({ err }, `${opts.what} watch ended with an error`);
  });

  return {
    kv,
    byKey,
    ready: ready.promise,
    entries: () => [...byKey.values()],
    malformed: () => bad,
    async close() {
      watch.stop();
      await pump;
    },
  };
}
