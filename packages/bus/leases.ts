import { JetStreamApiCodes, JetStreamApiError, StorageType } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Bus } from "./connect.ts";
import { BusStreamError } from "./errors.ts";

/**
 * Leases on NATS KV: a key held by one holder at a time, kept alive by renewing it.
 * The bucket's TTL (stream max_age) removes a key its holder stopped renewing, so a
 * holder killed with SIGKILL gives its leases up after at most one TTL. Every write is
 * revision-checked: a create succeeds only where no live value exists, a renewal or
 * release only while the holder's revision is still the latest one.
 */

/** KV bucket holding partition leases and the membership of the processes that take them. */
export const LEASES_BUCKET = "periscope-leases";
/** A lease (or membership) not renewed for this long is gone, ms. */
export const DEFAULT_LEASE_TTL_MS = 3000;
/** Raw partitions per node when nothing else is configured (collector and enricher must agree). */
export const DEFAULT_RAW_PARTITIONS = 16;

/** What a lease or membership value says about its holder. */
export interface LeaseValue {
  /** Unique id of the holding process. */
  readonly holder: string;
  /** Holder's wall clock when it wrote the value, ms (informational). */
  readonly atMs: number;
}

/**
 * Opens the lease bucket, creating it (memory storage, history 1, max_age `ttlMs`) when
 * missing. A bucket made earlier with another TTL is used as it is (and logged).
 * Throws {@link BusStreamError}.
 */
export async function openLeaseBucket(
  bus: Bus,
  ttlMs: number = DEFAULT_LEASE_TTL_MS,
  bucket: string = LEASES_BUCKET,
): Promise<KV> {
  let kv: KV;
  try {
    kv = await bus.kvm().create(bucket, { history: 1, ttl: ttlMs, storage: StorageType.Memory });
  } catch (err) {
    throw new BusStreamError(`cannot create or open the KV bucket ${bucket}`, { cause: err });
  }
  const have = (await kv.status()).ttl;
  if (have !== ttlMs) {
    bus.log.warn({ bucket, haveTtlMs: have, wantTtlMs: ttlMs }, "lease bucket kept as found");
  }
  return kv;
}

function isWrongRevision(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;
}

function encodeValue(holder: string): string {
  const value: LeaseValue = { holder, atMs: Date.now() };
  return JSON.stringify(value);
}

/** The holder named by a stored lease value, undefined when it is not one. */
export function parseLeaseValue(bytes: Uint8Array): LeaseValue | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseValue>;
    return typeof v.holder === "string" && typeof v.atMs === "number"
      ? { holder: v.holder, atMs: v.atMs }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes `key` for `holder` if nobody holds it (absent, expired or released).
 * Resolves to the lease's revision, or undefined when someone else holds it.
 * Other failures (broker unreachable) reject.
 */
export async function claimLease(kv: KV, key: string, holder: string): Promise<number | undefined> {
  try {
    return await kv.create(key, encodeValue(holder));
  } catch (err) {
    if (isWrongRevision(err)) return undefined;
    throw err;
  }
}

/**
 * Renews a lease held at `revision`. Resolves to the new revision, or undefined when
 * the lease was lost meanwhile (expired, taken, or released). Other failures reject.
 */
export async function renewLease(
  kv: KV,
  key: string,
  holder: string,
  revision: number,
): Promise<number | undefined> {
  try {
    return await kv.update(key, encodeValue(holder), revision);
  } catch (err) {
    if (isWrongRevision(err)) return undefined;
    throw err;
  }
}

/**
 * Gives a lease held at `revision` up, so another holder can claim it at once.
 * Resolves false when it was no longer this holder's (nothing changed).
 */
export async function releaseLease(kv: KV, key: string, revision: number): Promise<boolean> {
  try {
    await kv.delete(key, { previousSeq: revision });
    return true;
  } catch (err) {
    if (isWrongRevision(err)) return false;
    throw err;
  }
}

/** Writes (or refreshes) an unconditional entry, e.g. a membership beat. */
export async function putBeat(kv: KV, key: string, holder: string): Promise<void> {
  await kv.put(key, encodeValue(holder));
}

/** The keys under `prefix` (e.g. `member.`) that currently hold a value. */
export async function liveKeys(kv: KV, prefix: string): Promise<string[]> {
  // A put while the listing runs can deliver a key twice.
  const out = new Set<string>();
  const keys = await kv.keys(`${prefix}>`);
  for await (const k of keys) out.add(k);
  return [...out];
}

/**
 * How many of `total` items the member at `rank` (0-based, in a list sorted the same
 * way by every member) should hold so that `members` members together hold each once
 * and no two differ by more than one.
 */
export function fairShare(total: number, members: number, rank: number): number {
  if (members <= 0) return total;
  const base = Math.floor(total / members);
  return base + (rank < total % members ? 1 : 0);
}
