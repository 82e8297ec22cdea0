import { canonicalIp, type EndpointInfo } from "@periscope/model";
import type { Bus } from "./connect.ts";
import { BusInputError } from "./errors.ts";
import { type KvRegistry, openKvCache } from "./kv-cache.ts";

/** KV bucket holding one entry per endpoint IP. */
export const ENDPOINTS_BUCKET = "periscope-endpoints";

/** An endpoint with its address. */
export type EndpointRecord = EndpointInfo & { ip: string };

/** The JSON stored in the bucket (docs/internals.md): snake_case field names. */
interface StoredEndpoint {
  ip: string;
  namespace: string;
  pod_name: string;
  labels: string[];
  node_name?: string;
  id?: number;
  identity?: number;
}

/**
 * Canonical text form of an IP (@periscope/model's canonicalIp: the form the flow decoder
 * produces); throws BusInputError for non-IPs.
 */
export function normalizeIp(ip: string): string {
  const n = canonicalIp(ip);
  if (n === undefined) throw new BusInputError(`"${ip}" is not an IP address`);
  return n;
}

/** KV key for an IP: the canonical address with `:` replaced by `_`. */
export function endpointKey(ip: string): string {
  return normalizeIp(ip).replaceAll(":", "_");
}

function toStored(rec: EndpointRecord): StoredEndpoint {
  return {
    ip: normalizeIp(rec.ip),
    namespace: rec.namespace,
    pod_name: rec.podName,
    labels: [...rec.labels],
    ...(rec.nodeName !== undefined ? { node_name: rec.nodeName } : {}),
    ...(rec.id !== undefined ? { id: rec.id } : {}),
    ...(rec.identity !== undefined ? { identity: rec.identity } : {}),
  };
}

/** Parses a stored value; throws BusInputError naming the bad field. */
export function parseStoredEndpoint(value: unknown): EndpointRecord {
  if (typeof value !== "object" || value === null)
    throw new BusInputError("endpoint is not an object");
  const v = value as Record<string, unknown>;
  const str = (field: string): string => {
    const x = v[field];
    if (typeof x !== "string") throw new BusInputError(`endpoint field "${field}" is not a string`);
    return x;
  };
  const labels = v.labels ?? [];
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
    throw new BusInputError(`endpoint field "labels" is not a list of strings`);
  }
  const rec: EndpointRecord = {
    ip: normalizeIp(str("ip")),
    namespace: str("namespace"),
    podName: str("pod_name"),
    labels: labels as string[],
  };
  if (v.node_name !== undefined) rec.nodeName = str("node_name");
  for (const field of ["id", "identity"] as const) {
    const x = v[field];
    if (x === undefined) continue;
    if (typeof x !== "number") throw new BusInputError(`endpoint field "${field}" is not a number`);
    rec[field] = x;
  }
  return rec;
}

/** Endpoint directory backed by the {@link ENDPOINTS_BUCKET} KV bucket. */
export interface EndpointRegistry extends KvRegistry<EndpointRecord> {
  /** Stores (or replaces) the endpoint under its IP. */
  put(rec: EndpointRecord): Promise<void>;
  /** Removes the endpoint of `ip`. */
  delete(ip: string): Promise<void>;
  /** In-memory lookup, kept current by a KV watch; undefined when unknown or `ip` is not an IP. */
  lookup(ip: string): EndpointInfo | undefined;
}

/**
 * Opens (creating if missing) the endpoints bucket and starts a watch that includes
 * history, so existing entries load first and later changes apply as they happen.
 */
export async function openEndpointRegistry(bus: Bus): Promise<EndpointRegistry> {
  // byKey is keyed by KV key: the canonical IP with `:` → `_`.
  const cache = await openKvCache(bus, {
    bucket: ENDPOINTS_BUCKET,
    what: "endpoint",
    parse: (_key, value) => parseStoredEndpoint(value),
  });
  const { kv, byKey } = cache;

  return {
    ready: cache.ready,
    async put(rec) {
      const stored = toStored(rec);
      await kv.put(endpointKey(stored.ip), JSON.stringify(stored));
    },
    async delete(ip) {
      await kv.delete(endpointKey(ip));
    },
    lookup(ip) {
      // Fast path: callers usually pass the canonical form already.
      let rec = byKey.get(ip.replaceAll(":", "_"));
      if (!rec && ip.includes(":")) {
        const canonical = canonicalIp(ip);
        if (canonical !== undefined) rec = byKey.get(canonical.replaceAll(":", "_"));
      }
      if (!rec) return undefined;
      const { ip: _ip, ...info } = rec;
      return info;
    },
    entries: cache.entries,
    malformed: cache.malformed,
    close: cache.close,
  };
}
