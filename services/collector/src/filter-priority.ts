/** Lowest and count of the tc priorities collectors use (below the kernel's first free 0xc000). */
const FILTER_PRIORITY_BASE = 0x8000;
const FILTER_PRIORITY_SPAN = 0x4000;

/**
 * tc priority of a node's filters: the same for every run of a node (a restart replaces
 * its own filters in place, without duplicates or a gap), usually different between nodes
 * sharing a host (FNV-1a of the name over 16384 priorities).
 */
export function filterPriorityOf(node: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(node, "utf8")) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return FILTER_PRIORITY_BASE + (h % FILTER_PRIORITY_SPAN);
}
