/**
 * Dedupe of flows seen on several interfaces of one node (veth pair, bridge, host
 * interface): like the NetObserv agent's "firstCome" deduper, the observation point
 * (interface + hook) that reported a flow's 5-tuple first owns it until the owner has
 * not seen it for the expiry time; the others' records are duplicates.
 */
import type { FlowKey } from "@periscope/wire";

/** The 5-tuple part of a flow key: equal on every interface the packets cross. */
export function tupleId(k: FlowKey): string {
  return `${k.family}/${k.proto}/${k.icmpType}/${k.icmpCode}/${Buffer.from(k.srcAddr).toString("hex")}/${Buffer.from(k.dstAddr).toString("hex")}/${k.srcPort}/${k.dstPort}`;
}

/** The observation point of a flow key: namespace, interface and hook. */
export function pointId(k: FlowKey): string {
  return `${k.netnsCookie}/${k.ifindex}/${k.direction}`;
}

interface Owner {
  point: string;
  lastSeenNs: bigint;
}

/** First-come ownership of 5-tuples by observation points. */
export class FlowDedupe {
  readonly #owners = new Map<string, Owner>();
  readonly #expiryNs: bigint;

  /** @param expiryNs an owner that saw nothing of its tuple for this long gives it up */
  constructor(expiryNs: bigint) {
    this.#expiryNs = expiryNs;
  }

  /** 5-tuples owned now. */
  get size(): number {
    return this.#owners.size;
  }

  /**
   * Notes that `k`'s observation point saw its tuple until `lastSeenNs`; returns true
   * when another point owns the tuple (the record is a duplicate).
   */
  isDuplicate(k: FlowKey, lastSeenNs: bigint): boolean {
    const tuple = tupleId(k);
    const point = pointId(k);
    const owner = this.#owners.get(tuple);
    if (owner === undefined || lastSeenNs - owner.lastSeenNs > this.#expiryNs) {
      this.#owners.set(tuple, { point, lastSeenNs });
      return false;
    }
    if (owner.point !== point) return true;
    if (lastSeenNs > owner.lastSeenNs) owner.lastSeenNs = lastSeenNs;
    return false;
  }

  /** Forgets owners that saw nothing since `nowNs - expiry`. */
  expire(nowNs: bigint): void {
    for (const [tuple, owner] of this.#owners) {
      if (nowNs - owner.lastSeenNs > this.#expiryNs) this.#owners.delete(tuple);
    }
  }
}
