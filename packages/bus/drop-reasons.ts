import type { Bus } from "./connect.ts";
import { BusInputError } from "./errors.ts";
import { type KvRegistry, openKvCache } from "./kv-cache.ts";
import { sanitizeToken } from "./subjects.ts";

/**
 * KV bucket of what a node's kernel tells readers about its records. Key
 * `<node>.drop-reasons` (node sanitized like subject tokens) holds that kernel's
 * `enum skb_drop_reason` as JSON `{"node","reasons":{"<value>":"<NAME>",…}}`, names
 * without the `SKB_DROP_REASON_` prefix: the numbers differ between kernel versions,
 * so drop records are named with the table of the node that sent them. Key
 * `<node>.drop-locations` holds the kernel addresses that dropped packets so far with
 * their symbols, `{"node","locations":{"<hex address>":"<symbol>+0x<offset>",…}}`.
 */
export const KERNEL_BUCKET = "periscope-kernel";

/** One node's drop reason table. */
export interface DropReasonTable {
  /** Node name as the collector knows it (unsanitized). */
  node: string;
  /** Reason value -> name. */
  reasons: ReadonlyMap<number, string>;
}

/** One node's named drop locations. */
export interface DropLocationTable {
  node: string;
  /** Kernel text address -> `symbol+0xoffset`. */
  locations: ReadonlyMap<bigint, string>;
}

type KernelTable =
  | { kind: "reasons"; table: DropReasonTable }
  | { kind: "locations"; table: DropLocationTable };

/** KV key of a node's drop location table. */
export function dropLocationsKey(node: string): string {
  return `${sanitizeToken(node)}.drop-locations`;
}

/** The JSON stored for a location table. */
export function storedDropLocationsJson(table: DropLocationTable): string {
  const locations = Object.fromEntries(
    [...table.locations].map(([addr, sym]) => [addr.toString(16), sym]),
  );
  return JSON.stringify({ node: table.node, locations });
}

/** Parses a stored location table; throws BusInputError naming the bad field. */
export function parseStoredDropLocations(value: unknown): DropLocationTable {
  if (typeof value !== "object" || value === null) {
    throw new BusInputError("drop location table is not an object");
  }
  const v = value as Record<string, unknown>;
  if (typeof v.node !== "string") {
    throw new BusInputError(`drop locations field "node" is not a string`);
  }
  if (typeof v.locations !== "object" || v.locations === null) {
    throw new BusInputError(`drop locations field "locations" is not an object`);
  }
  const locations = new Map<bigint, string>();
  for (const [k, sym] of Object.entries(v.locations)) {
    if (!/^[0-9a-f]{1,16}$/.test(k) || typeof sym !== "string" || sym === "") {
      throw new BusInputError(`drop locations entry "${k}" is not <hex address>: <symbol>`);
    }
    locations.set(BigInt(`0x${k}`), sym);
  }
  return { node: v.node, locations };
}

/** KV key of a node's drop reason table. */
export function dropReasonsKey(node: string): string {
  return `${sanitizeToken(node)}.drop-reasons`;
}

/** The JSON stored for a table (see {@link KERNEL_BUCKET}). */
export function storedDropReasonsJson(table: DropReasonTable): string {
  return JSON.stringify({ node: table.node, reasons: Object.fromEntries(table.reasons) });
}

/** Parses a stored table; throws BusInputError naming the bad field. */
export function parseStoredDropReasons(_key: string, value: unknown): DropReasonTable {
  if (typeof value !== "object" || value === null) {
    throw new BusInputError("drop reason table is not an object");
  }
  const v = value as Record<string, unknown>;
  if (typeof v.node !== "string")
    throw new BusInputError(`drop reasons field "node" is not a string`);
  if (typeof v.reasons !== "object" || v.reasons === null) {
    throw new BusInputError(`drop reasons field "reasons" is not an object`);
  }
  const reasons = new Map<number, string>();
  for (const [k, name] of Object.entries(v.reasons)) {
    if (!/^\d+$/.test(k) || typeof name !== "string" || name === "") {
      throw new BusInputError(`drop reasons entry "${k}" is not <decimal value>: <name>`);
    }
    reasons.set(Number(k), name);
  }
  return { node: v.node, reasons };
}

/** Drop reason tables of every node, backed by the {@link KERNEL_BUCKET} KV bucket. */
export interface DropReasonRegistry extends KvRegistry<DropReasonTable> {
  /** Stores (or replaces) a node's table. */
  put(table: DropReasonTable): Promise<void>;
  /** Name of a reason value on `node` (as in RawFrame.node_name), kept current by a KV watch. */
  lookup(node: string, reason: number): string | undefined;
  /** Stores (or replaces) a node's location table. */
  putLocations(table: DropLocationTable): Promise<void>;
  /** `symbol+0xoffset` of a drop location on `node`, once the node published it. */
  lookupLocation(node: string, location: bigint): string | undefined;
}

/**
 * Opens (creating if missing) the kernel bucket and mirrors the drop reason tables in
 * memory: existing entries load first, later changes apply as they happen.
 */
export async function openDropReasonRegistry(bus: Bus): Promise<DropReasonRegistry> {
  const cache = await openKvCache<KernelTable>(bus, {
    bucket: KERNEL_BUCKET,
    what: "kernel table",
    parse: (key, value) => {
      if (key.endsWith(".drop-reasons")) {
        return { kind: "reasons", table: parseStoredDropReasons(key, value) };
      }
      if (key.endsWith(".drop-locations")) {
        return { kind: "locations", table: parseStoredDropLocations(value) };
      }
      throw new BusInputError(`unexpected key ${key}`);
    },
  });
  const get = (key: string): KernelTable | undefined => cache.byKey.get(key);
  return {
    ready: cache.ready,
    async put(table) {
      await cache.kv.put(dropReasonsKey(table.node), storedDropReasonsJson(table));
    },
    lookup(node, reason) {
      const t = get(dropReasonsKey(node));
      return t?.kind === "reasons" ? t.table.reasons.get(reason) : undefined;
    },
    async putLocations(table) {
      await cache.kv.put(dropLocationsKey(table.node), storedDropLocationsJson(table));
    },
    lookupLocation(node, location) {
      const t = get(dropLocationsKey(node));
      return t?.kind === "locations" ? t.table.locations.get(location) : undefined;
    },
    entries: () => cache.entries().flatMap((e) => (e.kind === "reasons" ? [e.table] : [])),
    malformed: cache.malformed,
    close: cache.close,
  };
}
