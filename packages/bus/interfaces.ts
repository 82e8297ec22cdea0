import type { Bus } from "./connect.ts";
import { BusInputError } from "./errors.ts";
import { type KvRegistry, openKvCache } from "./kv-cache.ts";
import { sanitizeToken } from "./subjects.ts";

/**
 * KV bucket naming every interface a collector is attached to, so readers can turn the
 * (node, netns_cookie, ifindex) of a kernel record into a device name.
 * Key: `<node>.<netns_cookie>.<ifindex>` (node sanitized like subject tokens, cookie in
 * decimal). Value JSON: `{"node","ifindex","name","netns","netns_cookie"}` where `netns`
 * is the /run/netns name ("" for the collector's own namespace) and `netns_cookie` is
 * the cookie again as a decimal string.
 */
export const INTERFACES_BUCKET = "periscope-interfaces";

/** What a record's interface resolves to. */
export interface InterfaceInfo {
  /** Device name inside its namespace. */
  name: string;
  /** Named netns (/run/netns/<netns>) the device lives in; "" for the collector's own. */
  netns: string;
}

/** One registry entry. */
export interface InterfaceRecord extends InterfaceInfo {
  /** Node name as the collector knows it (unsanitized). */
  node: string;
  /** Cookie of the device's network namespace (SO_NETNS_COOKIE; the records' netns_cookie). */
  netnsCookie: bigint;
  ifindex: number;
}

interface StoredInterface {
  node: string;
  ifindex: number;
  name: string;
  netns: string;
  netns_cookie: string;
}

/** KV key of an interface: `<sanitized node>.<cookie>.<ifindex>`. */
export function interfaceKey(node: string, netnsCookie: bigint, ifindex: number): string {
  if (netnsCookie < 0n) throw new BusInputError(`netns cookie must be >= 0, got ${netnsCookie}`);
  if (!Number.isInteger(ifindex) || ifindex <= 0) {
    throw new BusInputError(`ifindex must be a positive integer, got ${ifindex}`);
  }
  return `${sanitizeToken(node)}.${netnsCookie}.${ifindex}`;
}

/** Key prefix filter for every entry of one node: `<sanitized node>.>`. */
export function interfaceNodeFilter(node: string): string {
  return `${sanitizeToken(node)}.>`;
}

/** The JSON stored for a record (see {@link INTERFACES_BUCKET}). */
export function storedInterfaceJson(rec: InterfaceRecord): string {
  const stored: StoredInterface = {
    node: rec.node,
    ifindex: rec.ifindex,
    name: rec.name,
    netns: rec.netns,
    netns_cookie: rec.netnsCookie.toString(),
  };
  return JSON.stringify(stored);
}

/**
 * Parses a stored value; the cookie comes from the key when the value lacks it.
 * Throws BusInputError naming the bad field.
 */
export function parseStoredInterface(key: string, value: unknown): InterfaceRecord {
  if (typeof value !== "object" || value === null) {
    throw new BusInputError("interface entry is not an object");
  }
  const v = value as Record<string, unknown>;
  const str = (field: string): string => {
    const x = v[field];
    if (typeof x !== "string")
      throw new BusInputError(`interface field "${field}" is not a string`);
    return x;
  };
  const ifindex = v.ifindex;
  if (typeof ifindex !== "number" || !Number.isInteger(ifindex) || ifindex <= 0) {
    throw new BusInputError(`interface field "ifindex" is not a positive integer`);
  }
  const cookieText = typeof v.netns_cookie === "string" ? v.netns_cookie : key.split(".").at(-2);
  if (cookieText === undefined || !/^\d+$/.test(cookieText)) {
    throw new BusInputError(`interface field "netns_cookie" is not a decimal number`);
  }
  return {
    node: str("node"),
    ifindex,
    name: str("name"),
    netns: typeof v.netns === "string" ? v.netns : "",
    netnsCookie: BigInt(cookieText),
  };
}

/** Interface directory backed by the {@link INTERFACES_BUCKET} KV bucket. */
export interface InterfaceRegistry extends KvRegistry<InterfaceRecord> {
  /** Stores (or replaces) an entry. */
  put(rec: InterfaceRecord): Promise<void>;
  /** Removes an entry by its key parts. */
  delete(node: string, netnsCookie: bigint, ifindex: number): Promise<void>;
  /** Removes an entry by its KV key. */
  deleteKey(key: string): Promise<void>;
  /** Keys stored right now for one node (read from the server, not the watch). */
  keysOfNode(node: string): Promise<string[]>;
  /** In-memory lookup kept current by a KV watch; `node` as in RawFrame.node_name. */
  lookup(node: string, netnsCookie: bigint, ifindex: number): InterfaceInfo | undefined;
}

/**
 * Opens (creating if missing) the interfaces bucket and starts a watch that includes
 * history, so existing entries load first and later changes apply as they happen.
 */
export async function openInterfaceRegistry(bus: Bus): Promise<InterfaceRegistry> {
  const cache = await openKvCache(bus, {
    bucket: INTERFACES_BUCKET,
    what: "interface",
    parse: parseStoredInterface,
  });
  const { kv, byKey } = cache;

  return {
    ready: cache.ready,
    async put(rec) {
      await kv.put(interfaceKey(rec.node, rec.netnsCookie, rec.ifindex), storedInterfaceJson(rec));
    },
    async delete(node, netnsCookie, ifindex) {
      await kv.delete(interfaceKey(node, netnsCookie, ifindex));
    },
    async deleteKey(key) {
      await kv.delete(key);
    },
    async keysOfNode(node) {
      const out: string[] = [];
      for await (const k of await kv.keys(interfaceNodeFilter(node))) out.push(k);
      return out;
    },
    lookup(node, netnsCookie, ifindex) {
      const rec = byKey.get(`${sanitizeToken(node)}.${netnsCookie}.${ifindex}`);
      return rec === undefined ? undefined : { name: rec.name, netns: rec.netns };
    },
    entries: cache.entries,
    malformed: cache.malformed,
    close: cache.close,
  };
}
