import { netnsCookie } from "@periscope/bpf";
import type { Logger } from "@periscope/telemetry";
import type { InterfaceTarget } from "./config.ts";
import { type DeviceLister, type NetDevice, systemLister } from "./discovery.ts";
import type { CollectorMetrics, DetachReason } from "./metrics.ts";
import { type CompiledPattern, compilePattern, type InterfacePattern } from "./patterns.ts";
import {
  coversScope,
  type Listing,
  planScan,
  scopeOf,
  scopeOfName,
  targetName,
  type Wanted,
} from "./scan-plan.ts";

export { filterPriorityOf } from "./filter-priority.ts";
export { scopeOf, targetName } from "./scan-plan.ts";

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

/** One device change as a notification reports it (RTM_NEWLINK = "new", RTM_DELLINK = "del"). */
export interface DeviceChange extends NetDevice {
  readonly kind: "new" | "del";
}

/**
 * Hooks called on every attach and detach, after the program changed (for the interface
 * registry, agent events, …). A hook that throws is logged and counted, never stops discovery.
 */
export interface AttachListener {
  onAttach?(dev: AttachedDevice): void;
  onDetach?(dev: AttachedDevice, reason: DetachReason): void;
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

/** What one discovery pass looks at. */
export interface ScanOptions {
  /** Only these scopes ("" = own namespace); every scope the patterns name when absent. */
  readonly scopes?: ReadonlySet<string>;
  /**
   * The pass is the periodic safety net behind change notifications: what it has to
   * attach or detach was missed by them and is counted as such.
   */
  readonly countMissed?: boolean;
}

/**
 * Keeps the trace program attached to every device matching the configured patterns.
 * Change notifications ({@link applyChanges}, {@link forgetScope}) attach and detach
 * single devices at once; a scan lists namespaces, attaches new matches, detaches
 * devices that vanished and re-attaches devices whose ifindex or namespace changed
 * (deleted and recreated). A device is attached at most once however many patterns
 * match it. A namespace that cannot be listed keeps its attachments until it can.
 * Scans run one at a time; a scan leaves alone a namespace that changed while it listed
 * it (the notification is newer than the listing).
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
  readonly #listeners = new Set<AttachListener>();
  /** Scope → notifications applied so far. */
  readonly #changeSeq = new Map<string, number>();
  /** Scope → netns cookie, read once per scope between full scans. */
  #cookies = new Map<string, bigint>();
  #chain: Promise<void> = Promise.resolve();

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

  /**
   * Calls `listener` after every attach and detach from now on (agent events, the
   * interface registry). Returns a function that removes it.
   */
  listen(listener: AttachListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** True when some pattern looks into scope `scope` ("" = own namespace). */
  covers(scope: string): boolean {
    return this.#patterns.some((p) => coversScope(p, scope));
  }

  /** Scopes the patterns name right now: "" for own-namespace patterns, matching /run/netns names. */
  scopes(): Set<string> {
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
    return scopes;
  }

  /** Scopes holding devices whose attach failed and waits for a retry. */
  failingScopes(): Set<string> {
    const out = new Set<string>();
    for (const name of this.#failedAt.keys()) out.add(scopeOfName(name));
    return out;
  }

  /** One discovery pass, queued behind a running one. */
  scan(opts: ScanOptions = {}): Promise<void> {
    const run = this.#chain.then(() => this.#scan(opts));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Applies device notifications of one scope in kernel order: a new matching device is
   * attached, a removed one detached (its ifindex must match), a renamed one detached
   * under its old name. Synchronous, so the attached set is current when it returns.
   */
  applyChanges(scope: string, changes: readonly DeviceChange[]): void {
    this.#changeSeq.set(scope, (this.#changeSeq.get(scope) ?? 0) + 1);
    for (const c of changes) {
      const target = scope === "" ? { ifname: c.ifname } : { ifname: c.ifname, netns: scope };
      const name = targetName(target);
      const dev = this.#attached.get(name);
      if (c.kind === "del") {
        if (dev !== undefined && dev.ifindex === c.ifindex) this.#detach(dev, "vanished");
        continue;
      }
      for (const other of this.#attached.values()) {
        if (scopeOf(other.target) === scope && other.ifindex === c.ifindex && other.name !== name) {
          this.#detach(other, "vanished"); // renamed
        }
      }
      if (
        !this.#patterns.some((p) => coversScope(p, scope) && p.matchIfname(c.ifname, c.loopback))
      ) {
        continue;
      }
      if (dev !== undefined && dev.ifindex === c.ifindex) continue; // flags or addresses changed
      if (dev !== undefined) this.#detach(dev, "recreated");
      this.#failedAt.delete(name); // a device that just appeared is worth trying at once
      this.#attach(name, { target, ifindex: c.ifindex, scope }, this.#cookieFor(scope));
    }
    this.#opts.metrics.setAttached(this.#attached.size);
  }

  /** The namespace `scope` is gone: detaches its devices (reason "vanished") at once. */
  forgetScope(scope: string): void {
    this.#changeSeq.set(scope, (this.#changeSeq.get(scope) ?? 0) + 1);
    this.#cookies.delete(scope);
    for (const dev of [...this.#attached.values()]) {
      if (scopeOf(dev.target) === scope) this.#detach(dev, "vanished");
    }
    for (const name of [...this.#failedAt.keys()]) {
      if (name.startsWith(`${scope}/`)) this.#failedAt.delete(name);
    }
    this.#opts.metrics.setAttached(this.#attached.size);
  }

  /** Waits for running scans, then detaches everything (reason "stopped"). */
  async detachAll(): Promise<void> {
    await this.#chain;
    for (const dev of [...this.#attached.values()]) this.#detach(dev, "stopped");
    this.#opts.metrics.setAttached(0);
  }

  async #scan(opts: ScanOptions): Promise<void> {
    const { metrics } = this.#opts;
    const only = opts.scopes;
    if (only === undefined) this.#cookies = new Map();
    else for (const s of only) this.#cookies.delete(s);
    const seqBefore = new Map(this.#changeSeq);
    const scopes = only ?? this.scopes();
    const listings = await this.#listScopes(scopes);
    // Notified while listing: the listing is older than what the attacher already did.
    const stale = new Set<string>();
    for (const scope of listings.keys()) {
      if ((this.#changeSeq.get(scope) ?? 0) !== (seqBefore.get(scope) ?? 0)) stale.add(scope);
    }
    const looked = (scope: string): boolean =>
      !stale.has(scope) && (only === undefined || only.has(scope));

    const { wanted, missing } = planScan(this.#patterns, listings, looked);

    let missed = 0;
    for (const dev of [...this.#attached.values()]) {
      const scope = scopeOf(dev.target);
      if (!looked(scope) || listings.get(scope) === "error") continue;
      const want = wanted.get(dev.name);
      if (want === undefined) {
        this.#detach(dev, "vanished");
        missed++;
      } else if (want.ifindex !== dev.ifindex || this.#cookieFor(want.scope) !== dev.netnsCookie) {
        this.#detach(dev, "recreated");
        missed++;
      }
    }
    for (const [name, want] of wanted) {
      if (this.#attached.has(name) || !looked(want.scope)) continue;
      const retry = this.#failedAt.has(name);
      this.#attach(name, want, this.#cookieFor(want.scope));
      if (!retry && this.#attached.has(name)) missed++;
    }
    for (const target of missing) this.#attachMissing(target);
    for (const name of [...this.#failedAt.keys()]) {
      if (!looked(scopeOfName(name))) continue;
      if (!wanted.has(name) && !missing.some((t) => targetName(t) === name)) {
        this.#failedAt.delete(name);
      }
    }
    if (opts.countMissed === true && missed > 0) {
      metrics.missedByNotifications(missed);
      this.#opts.log.warn(
        { changes: missed },
        "the periodic rescan found changes notifications missed",
      );
    }
    metrics.setAttached(this.#attached.size);
  }

  #cookieFor(scope: string): bigint {
    let c = this.#cookies.get(scope);
    if (c === undefined) {
      try {
        c = this.#cookieOf(scope === "" ? undefined : scope);
      } catch (err) {
        this.#opts.metrics.error("netns_cookie");
        this.#opts.log.warn({ err, netns: scope }, "cannot read the netns cookie; registering 0");
        c = 0n;
      }
      this.#cookies.set(scope, c);
    }
    return c;
  }

  async #listScopes(scopes: ReadonlySet<string>): Promise<Map<string, Listing>> {
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
    const dev: AttachedDevice = {
      name,
      target: want.target,
      ifindex: want.ifindex,
      netnsCookie: cookie,
    };
    this.#attached.set(name, dev);
    this.#opts.metrics.attachedOne();
    this.#opts.log.info(
      { interface: name, ifindex: want.ifindex, netnsCookie: String(cookie) },
      "attached",
    );
    this.#notify((l) => l.onAttach?.(dev));
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
    this.#notify((l) => l.onDetach?.(dev, reason));
  }

  #notify(call: (l: AttachListener) => void): void {
    for (const l of this.#listeners) {
      try {
        call(l);
      } catch (err) {
        this.#opts.metrics.error("attach_listener");
        this.#opts.log.error({ err }, "attach listener failed");
      }
    }
  }
}
