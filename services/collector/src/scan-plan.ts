/**
 * The pure part of a discovery pass: from the device listings of some namespaces and the
 * compiled patterns, which devices should be attached and which literal devices are missing.
 */
import type { InterfaceTarget } from "./config.ts";
import type { NetDevice } from "./discovery.ts";
import type { CompiledPattern } from "./patterns.ts";

/** `[<netns>/]<ifname>` */
export function targetName(t: InterfaceTarget): string {
  return t.netns === undefined ? t.ifname : `${t.netns}/${t.ifname}`;
}

/** The scope of a device: "" for the own namespace, else its /run/netns name. */
export function scopeOf(t: InterfaceTarget): string {
  return t.netns ?? "";
}

/** The scope part of a `[<netns>/]<ifname>` name. */
export function scopeOfName(name: string): string {
  const slash = name.indexOf("/");
  return slash === -1 ? "" : name.slice(0, slash);
}

/** The devices of one scope, undefined when the namespace is gone, "error" when unlistable. */
export type Listing = NetDevice[] | undefined | "error";

/** A device that should be attached. */
export interface Wanted {
  readonly target: InterfaceTarget;
  readonly ifindex: number;
  readonly scope: string;
}

/** True when pattern `p` looks into scope `scope` ("" = own namespace). */
export function coversScope(p: CompiledPattern, scope: string): boolean {
  if (p.source.netns === undefined) return scope === "";
  return scope !== "" && p.matchNetns(scope);
}

/**
 * Devices to attach (by name, one entry however many patterns match) and literal
 * patterns whose device is not there in a scope that was looked at and listed.
 */
export function planScan(
  patterns: readonly CompiledPattern[],
  listings: ReadonlyMap<string, Listing>,
  looked: (scope: string) => boolean,
): { wanted: Map<string, Wanted>; missing: InterfaceTarget[] } {
  const wanted = new Map<string, Wanted>();
  const missing: InterfaceTarget[] = [];
  for (const p of patterns) {
    let found = false;
    for (const [scope, listing] of listings) {
      if (!coversScope(p, scope) || listing === "error" || listing === undefined) continue;
      for (const d of listing) {
        if (!p.matchIfname(d.ifname, d.loopback)) continue;
        found = true;
        const target = scope === "" ? { ifname: d.ifname } : { ifname: d.ifname, netns: scope };
        wanted.set(targetName(target), { target, ifindex: d.ifindex, scope });
      }
    }
    // A literal device that is not there is a failed attach; a glob matching nothing is not.
    const scope = p.source.netns ?? "";
    if (!p.ifnameGlob && !p.netnsGlob && !found && looked(scope)) {
      if (listings.get(scope) !== "error") missing.push(p.source);
    }
  }
  return { wanted, missing };
}
