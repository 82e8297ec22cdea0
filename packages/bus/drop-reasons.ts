import type { Bus } from "./connect.ts";
import { BusInputError } from "./errors.ts";
import { type KvRegistry, openKvCache } from "./kv-cache.ts";
import { sanitizeToken } from "./subjects.ts";

/**
 * KV bucket of what a node's kernel tells readers about its records. Key
 * `<node>.drop-reasons` (node sanitized like subject tokens) holds that kernel's
 * `enum skb_drop_reason` as JSON `{"node","reasons":{"<value>":"<NAME>",…}}`, names
 * without the `SKB_DROP_REASON_` prefix: the numbers differ between kernel versions,
 * so drop records are named with the table of the node that sent them.
 */
export const KERNEL_BUCKET = "periscope-kernel";

/** One node's drop reason table. */
export interface DropReasonTable {
  /** Node name as the collector knows it (unsanitized). */
  node: string;
  /** Reason value -> name. */
  reasons: ReadonlyMap<number, string>;
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
}

/**
 * Opens (creating if missing) the kernel bucket and mirrors the drop reason tables in
 * memory: existing entries load first, later changes apply as they happen.
 */
export async function openDropReasonRegistry(bus: Bus): Promise<DropReasonRegistry> {
  const cache = await openKvCache(bus, {
    bucket: KERNEL_BUCKET,
    what: "drop reason table",
    parse: (key, value) => {
      if (!key.endsWith(".drop-reasons")) throw new BusInputError(`unexpected key ${key}`);
      return parseStoredDropReasons(key, value);
    },
  });
  return {
    ready: cache.ready,
    async put(table) {
      await cache.kv.put(dropReasonsKey(table.node), storedDropReasonsJson(table));
    },
    lookup(node, reason) {
      return cache.byKey.get(dropReasonsKey(node))?.reasons.get(reason);
    },
    entries: cache.entries,
    malformed: cache.malformed,
    close: cache.close,
  };
}
