import { netnsCookie } from "@periscope/bpf";
import type { Logger } from "@periscope/telemetry";
import type { InterfaceTarget } from "./config.ts";
import { type DeviceLister, type NetDevice, systemLister } from "./discovery.ts";
import type { CollectorMetrics, DetachReason } from "./metrics.ts";
import { type CompiledPattern, compilePattern, type InterfacePattern } from "./patterns.ts";

/** What the attacher needs from the trace program. */
export interface AttachableProgram {
  /** Attaches by name; idempotent for a target that is attached. */
  attach(target: InterfaceTarget): void;
  /** Detaches; a device or netns that is gone counts as detached. */
  detach(target: InterfaceTarget): void;
}

/** A device the program is attached to. */
export interface AttachedDevice {
  /** `[<netns>/]<ifname>` */
  readonly name: string;
  readonly target: InterfaceTarget;
  /** ifindex inside its namespace when it was attached. */
  readonly ifindex: number;
  /** Cookie of its namespace (the records' netns_cookie); 0 when it could not be read. */
  readonly netnsCookie: bigint;
}

/** Attacher settings and parts. */
export interface AttacherOptions {
  readonly patterns: readonly InterfacePattern[];
  readonly program: AttachableProgram;
  /** Milliseconds before a failed attach of the same device is tried again. */
  readonly attachRetryMs: number;
  readonly metrics: CollectorMetrics;
  readonly log: Logger;
  readonly lister?: DeviceLister;
  readonly cookieOf?: (netns: string | undefined) => bigint;
  /** Monotonic milliseconds (default performance.now). */
  readonly now?: () => number;
}

/** `[<netns>/]<ifname>` */
export function targetName(t: InterfaceTarget): string {
  return t.netns === undefined ? t.ifname : `${t.netns}/${t.ifname}`;
}

/** A scope is a namespace: "" is the own one, anything else a /run/netns name. */
type Listing = NetDevice[] | undefined | "error";

interface Wanted {
  readonly target: InterfaceTarget;
  readonly ifindex: number;
  readonly scope: string;
}

/**
 * Keeps the trace program attached to every device matching the configured patterns.
 * Each scan lists the namespaces the patterns name, attaches new matches, detaches
 * devices that vanished and re-attaches devices whose ifindex or namespace changed
 * (deleted and recreated). A device is attached at most once however many patterns
 * match it. A namespace that cannot be listed keeps its attachments until it can.
 */
export class InterfaceAttacher {
  readonly #opts: AttacherOptions;
  readonly #patterns: CompiledPattern[];
  readonly #lister: DeviceLister;
  readonly #cookieOf: (netns: string | undefined) => bigint;
  readonly #now: () => number;
  readonly #attached = new Map<string, AttachedDevice>();
  /** Device name → monotonic ms of its last failed attach (present while failing). */
  readonly #failedAt = new Map<string, number>();
  /** Scopes whose listing failed last time (logged once per failure streak). */
  readonly #scopeErrors = new Set<string>();
  #scanning: Promise<void> | undefined;

  constructor(opts: AttacherOptions) {
    this.#opts = opts;
    this.#patterns = opts.patterns.map(compilePattern);
    this.#lister = opts.lister ?? systemLister;
    this.#cookieOf = opts.cookieOf ?? netnsCookie;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Devices attached right now, in attach order. */
  attached(): AttachedDevice[] {
    return [...this.#attached.values()];
  }

  /** One discovery pass; a call while one runs waits for that one instead of starting another. */
  scan(): Promise<void> {
    this.#scanning ??= this.#scan().finally(() => {
      this.#scanning = undefined;
    });
    return this.#scanning;
  }

  /** Waits for a running scan, then detaches everything (reason "stopped"). */
  async detachAll(): Promise<void> {
    await this.#scanning;
    for (const dev of [...this.#attached.values()]) this.#detach(dev, "stopped");
    this.#opts.metrics.setAttached(0);
  }

  async #scan(): Promise<void> {
    const { log, metrics } = this.#opts;
    const listings = await this.#listScopes();
    const wanted = new Map<string, Wanted>();
    const missing: InterfaceTarget[] = [];
    for (const p of this.#patterns) {
      let found = false;
      for (const [scope, listing] of listings) {
        if (!this.#covers(p, scope) || listing === "error" || listing === undefined) continue;
        for (const d of listing) {
          if (!p.matchIfname(d.ifname, d.loopback)) continue;
          found = true;
          const target = scope === "" ? { ifname: d.ifname } : { ifname: d.ifname, netns: scope };
          wanted.set(targetName(target), { target, ifindex: d.ifindex, scope });
        }
      }
      // A literal device that is not there is a failed attach; a glob matching nothing is not.
      if (!p.ifnameGlob && !p.netnsGlob && !found) {
        if (listings.get(p.source.netns ?? "") !== "error") missing.push(p.source);
      }
    }

    const cookies = new Map<string, bigint>();
    const cookieOf = (scope: string): bigint => {
      let c = cookies.get(scope);
      if (c === undefined) {
        try {
          c = this.#cookieOf(scope === "" ? undefined : scope);
        } catch (err) {
          metrics.error("netns_cookie");
          log.warn({ err, netns: scope }, "cannot read the netns cookie; registering 0");
          c = 0n;
        }
        cookies.set(scope, c);
      }
      return c;
    };

    for (const dev of [...this.#attached.values()]) {
      const want = wanted.get(dev.name);
      if (want === undefined) {
        if (listings.get(dev.target.netns ?? "") === "error") continue;
        this.#detach(dev, "vanished");
      } else if (want.ifindex !== dev.ifindex || cookieOf(want.scope) !== dev.netnsCookie) {
        this.#detach(dev, "recreated");
      }
    }
    for (const [name, want] of wanted) {
      if (!this.#attached.has(name)) this.#attach(name, want, cookieOf(want.scope));
    }
    for (const target of missing) this.#attachMissing(target);
    for (const name of this.#failedAt.keys()) {
      if (!wanted.has(name) && !missing.some((t) => targetName(t) === name)) {
        this.#failedAt.delete(name);
      }
    }
    metrics.setAttached(this.#attached.size);
  }

  /** True when pattern `p` looks into scope `scope`. */
  #covers(p: CompiledPattern, scope: string): boolean {
    if (p.source.netns === undefined) return scope === "";
    return scope !== "" && p.matchNetns(scope);
  }

  async #listScopes(): Promise<Map<string, Listing>> {
    const scopes = new Set<string>();
    let named: string[] | undefined;
    for (const p of this.#patterns) {
      if (p.source.netns === undefined) scopes.add("");
      else if (!p.netnsGlob) scopes.add(p.source.netns);
      else {
        named ??= this.#namedNetns();
        for (const n of named) if (p.matchNetns(n)) scopes.add(n);
      }
    }
    const out = new Map<string, Listing>();
    await Promise.all(
      [...scopes].map(async (scope) => {
        try {
          out.set(scope, await this.#lister.devices(scope === "" ? undefined : scope));
          if (this.#scopeErrors.delete(scope)) {
            this.#opts.log.info({ netns: scope }, "listing devices works again");
          }
        } catch (err) {
          out.set(scope, "error");
          this.#opts.metrics.error("discovery");
          if (!this.#scopeErrors.has(scope)) {
            this.#scopeErrors.add(scope);
            this.#opts.log.warn({ err, netns: scope }, "cannot list devices; keeping attachments");
          }
        }
      }),
    );
    return out;
  }

  #namedNetns(): string[] {
    try {
      return this.#lister.namedNetns();
    } catch (err) {
      this.#opts.metrics.error("discovery");
      this.#opts.log.warn({ err }, "cannot list named network namespaces");
      return [];
    }
  }

  #attach(name: string, want: Wanted, cookie: bigint): void {
    const failedAt = this.#failedAt.get(name);
    const now = this.#now();
    if (failedAt !== undefined && now - failedAt < this.#opts.attachRetryMs) return;
    try {
      this.#opts.program.attach(want.target);
    } catch (err) {
      this.#failed(name, err, failedAt !== undefined, now);
      return;
    }
    this.#failedAt.delete(name);
    this.#attached.set(name, {
      name,
      target: want.target,
      ifindex: want.ifindex,
      netnsCookie: cookie,
    });
    this.#opts.metrics.attachedOne();
    this.#opts.log.info(
      { interface: name, ifindex: want.ifindex, netnsCookie: String(cookie) },
      "attached",
    );
  }

  /** A literal device that is not there: counted as a failed attach, retried later. */
  #attachMissing(target: InterfaceTarget): void {
    const name = targetName(target);
    const failedAt = this.#failedAt.get(name);
    const now = this.#now();
    if (failedAt !== undefined && now - failedAt < this.#opts.attachRetryMs) return;
    this.#failed(name, new Error(`no device ${name}`), failedAt !== undefined, now);
  }

  #failed(name: string, err: unknown, repeated: boolean, now: number): void {
    this.#failedAt.set(name, now);
    this.#opts.metrics.attachError();
    const fields = { err, interface: name, retryMs: this.#opts.attachRetryMs };
    if (repeated) this.#opts.log.debug(fields, "attach failed again");
    else this.#opts.log.warn(fields, "attach failed");
  }

  #detach(dev: AttachedDevice, reason: DetachReason): void {
    this.#attached.delete(dev.name);
    try {
      this.#opts.program.detach(dev.target);
    } catch (err) {
      this.#opts.metrics.error("detach");
      this.#opts.log.error({ err, interface: dev.name }, "detach failed");
    }
    this.#opts.metrics.detachedOne(reason);
    this.#opts.log.info({ interface: dev.name, ifindex: dev.ifindex, reason }, "detached");
  }
}
