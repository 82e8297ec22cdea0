import { type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import {
  encodePolicyDevKey,
  encodePolicyEpKey,
  encodePolicyRule,
  encodePolicySet,
  type KernelPolicyRule,
  type KernelPolicySet,
  POLICY_MAX_RULES,
  POLICY_SET_LAYOUT,
  POLICY_SLOTS,
} from "@periscope/wire";
import { BpfError, ERRNO } from "./errors.ts";
import { isNull, lastErrno, libbpf, libc } from "./ffi.ts";

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
/** mmap of a BPF array is page granular; one page holds the single revision word. */
const PAGE = 4096;
/**
 * A slot is rewritten at the earliest this long after it stopped being active, so a
 * tc program that read the old revision just before the switch has long finished its
 * scan (one decision takes microseconds).
 */
export const POLICY_SLOT_GRACE_MS = 10;

/** A rule set as the kernel holds it in one slot (see bpf/include/policy.h). */
export interface KernelRuleSet {
  readonly rules: readonly KernelPolicyRule[];
  readonly set: KernelPolicySet;
  /** Devices of interface subjects with their subject bits. */
  readonly devices: readonly {
    readonly netnsCookie: bigint;
    readonly ifindex: number;
    readonly bits: bigint;
  }[];
  /** Addresses (4 or 16 bytes) of endpoint subjects with their subject bits. */
  readonly endpoints: readonly { readonly addr: Uint8Array; readonly bits: bigint }[];
}

/** The maps of policy.h by name, from the loaded trace object. */
export type MapFdLookup = (name: string) => number;

function update(fd: number, map: string, key: Uint8Array, value: Uint8Array): void {
  const rc = libbpf().bpf_map_update_elem(fd, ptr(key), ptr(value), 0);
  if (rc < 0) throw new BpfError(`bpf_map_update_elem(${map})`, -rc);
}

function u32(n: number): Uint8Array {
  return new Uint8Array(new Uint32Array([n]).buffer);
}

function u64(n: bigint): Uint8Array {
  return new Uint8Array(new BigUint64Array([n]).buffer);
}

/**
 * Writes compiled policy rule sets into the trace object's policy maps, double
 * buffered: {@link install} fills the inactive slot, then switches the active revision
 * with one aligned 32-bit store into the mmap'ed `policy_active` array, so each packet
 * sees the whole old or the whole new rule set. A slot is rewritten only
 * {@link POLICY_SLOT_GRACE_MS} after it was switched away from. Not thread-safe.
 */
export class PolicyMaps {
  readonly #rulesFd: number;
  readonly #setsFd: number;
  readonly #devicesFd: number;
  readonly #endpointsFd: number;
  #active: Uint32Array | null;
  #activePtr: Pointer;
  /** performance.now() of the last switch: the other slot stopped being active then. */
  #switchedAt = Number.NEGATIVE_INFINITY;
  /** Hash keys written per slot, deleted before the slot is written again. */
  readonly #slotKeys: Map<string, Uint8Array>[] = [new Map(), new Map()];

  constructor(mapFd: MapFdLookup) {
    this.#rulesFd = mapFd("policy_rules");
    this.#setsFd = mapFd("policy_sets");
    this.#devicesFd = mapFd("policy_devices");
    this.#endpointsFd = mapFd("policy_endpoints");
    const activeFd = mapFd("policy_active");
    const p = libc().mmap(null, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, activeFd, 0);
    if (isNull(p) || Number(p) < 0 || Number(p) >= 2 ** 63) {
      throw new BpfError("mmap(policy_active)", lastErrno());
    }
    this.#activePtr = p;
    this.#active = new Uint32Array(toArrayBuffer(p, 0, 4));
  }

  /** The revision in force; 0 = no policy. */
  revision(): number {
    if (this.#active === null) throw new BpfError("policy revision", ERRNO.EBADF, "closed");
    return this.#active[0] ?? 0;
  }

  /**
   * Writes `rs` into the inactive slot and makes it active. Returns the new revision.
   * @throws BpfError when a map write fails (the active rule set stays in force);
   *   RangeError when `rs` holds more rules than a slot.
   */
  install(rs: KernelRuleSet): number {
    if (this.#active === null) throw new BpfError("policy install", ERRNO.EBADF, "closed");
    if (rs.rules.length > POLICY_MAX_RULES) {
      throw new RangeError(`${rs.rules.length} policy rules, a slot holds ${POLICY_MAX_RULES}`);
    }
    const current = this.revision();
    let next = (current + 1) >>> 0;
    if (next === 0) next = 2; // wrapped: keep the slot alternating, never "no policy"
    const slot = next % POLICY_SLOTS;
    const wait = this.#switchedAt + POLICY_SLOT_GRACE_MS - performance.now();
    if (wait > 0) Bun.sleepSync(Math.ceil(wait));
    // Nothing reads this slot now: clear what an older rule set left in it.
    const old = this.#slotKeys[slot] ?? new Map<string, Uint8Array>();
    for (const [name, key] of old) {
      const fd = name.startsWith("d") ? this.#devicesFd : this.#endpointsFd;
      const rc = libbpf().bpf_map_delete_elem(fd, ptr(key));
      if (rc < 0 && -rc !== ERRNO.ENOENT) throw new BpfError("bpf_map_delete_elem(policy)", -rc);
    }
    old.clear();
    // Count the summary first as empty so a failure half-way leaves an inert slot.
    update(this.#setsFd, "policy_sets", u32(slot), new Uint8Array(POLICY_SET_LAYOUT.size));
    rs.rules.forEach((r, i) => {
      update(this.#rulesFd, "policy_rules", u32(slot * POLICY_MAX_RULES + i), encodePolicyRule(r));
    });
    for (const d of rs.devices) {
      const key = encodePolicyDevKey(slot, d.netnsCookie, d.ifindex);
      update(this.#devicesFd, "policy_devices", key, u64(d.bits));
      old.set(`d${d.netnsCookie}/${d.ifindex}`, key);
    }
    for (const e of rs.endpoints) {
      const key = encodePolicyEpKey(slot, e.addr);
      update(this.#endpointsFd, "policy_endpoints", key, u64(e.bits));
      old.set(`e${Array.from(e.addr).join(".")}`, key);
    }
    this.#slotKeys[slot] = old;
    update(this.#setsFd, "policy_sets", u32(slot), encodePolicySet(rs.set));
    // The switch: one aligned 32-bit store the tc programs read per packet.
    this.#active[0] = next;
    this.#switchedAt = performance.now();
    return next;
  }

  /** Installs an empty rule set: everything allowed, nothing reported. Returns the revision. */
  clear(): number {
    return this.install({
      rules: [],
      set: { nRules: 0, selected: [0n, 0n], allowSelected: [0n, 0n], enforce: 0n },
      devices: [],
      endpoints: [],
    });
  }

  /** Unmaps the revision word. The maps themselves belong to the trace object. */
  close(): void {
    if (this.#active === null) return;
    this.#active = null;
    libc().munmap(this.#activePtr, PAGE);
  }
}
