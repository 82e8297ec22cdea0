import {
  type InterfaceRecord,
  type InterfaceRegistry,
  interfaceKey,
  storedInterfaceJson,
} from "@periscope/bus";
import type { Logger } from "@periscope/telemetry";
import type { AttachedDevice } from "./attacher.ts";
import type { CollectorMetrics } from "./metrics.ts";

/** Registry sync settings and parts. */
export interface RegistrySyncOptions {
  /** Node name as configured (the registry sanitizes it into keys). */
  readonly node: string;
  /** Opens the registry; retried on the next sync when it fails (e.g. JetStream down). */
  readonly open: () => Promise<InterfaceRegistry>;
  readonly metrics: CollectorMetrics;
  readonly log: Logger;
}

/**
 * Mirrors the attached devices of this node into the interfaces KV bucket: one entry
 * per attached device, removed when it is detached. Works from desired state, so a
 * failed put/delete (NATS down) is repeated by the next sync. The first successful
 * sync also deletes entries of this node left behind by an earlier run.
 */
export class InterfaceRegistrySync {
  readonly #opts: RegistrySyncOptions;
  #registry: InterfaceRegistry | undefined;
  /** KV key → JSON this run stored there ("" = left by an earlier run, value unknown). */
  readonly #stored = new Map<string, string>();
  #desired = new Map<string, InterfaceRecord>();
  #pruned = false;
  #failing = false;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(opts: RegistrySyncOptions) {
    this.#opts = opts;
  }

  /** Sets what should be registered: exactly these devices. Call sync() to apply. */
  update(devices: readonly AttachedDevice[]): void {
    this.#desired = new Map(
      devices.map((d) => {
        const rec: InterfaceRecord = {
          node: this.#opts.node,
          netnsCookie: d.netnsCookie,
          ifindex: d.ifindex,
          name: d.target.ifname,
          netns: d.target.netns ?? "",
        };
        return [interfaceKey(rec.node, rec.netnsCookie, rec.ifindex), rec];
      }),
    );
  }

  /** Applies the desired state; calls during a running sync make it run once more. */
  sync(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#syncOnce();
      } while (this.#again);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Entries this run has stored and not removed. */
  storedKeys(): string[] {
    return [...this.#stored.keys()];
  }

  /** Removes every entry of this node (waiting up to `timeoutMs`), then stops the watch. */
  async close(timeoutMs: number): Promise<void> {
    this.#desired = new Map();
    await Promise.race([this.sync(), Bun.sleep(timeoutMs)]);
    if (this.#stored.size > 0) {
      this.#opts.log.warn({ keys: this.storedKeys() }, "interface entries left in the registry");
    }
    await this.#registry?.close();
    this.#registry = undefined;
  }

  async #syncOnce(): Promise<void> {
    try {
      this.#registry ??= await this.#opts.open();
      const reg = this.#registry;
      if (!this.#pruned) {
        for (const key of await reg.keysOfNode(this.#opts.node)) {
          if (!this.#stored.has(key)) this.#stored.set(key, "");
        }
        this.#pruned = true;
      }
      for (const [key, rec] of this.#desired) {
        const json = storedInterfaceJson(rec);
        if (this.#stored.get(key) === json) continue;
        await reg.put(rec);
        this.#stored.set(key, json);
      }
      for (const key of [...this.#stored.keys()]) {
        if (this.#desired.has(key)) continue;
        await reg.deleteKey(key);
        this.#stored.delete(key);
      }
      if (this.#failing) this.#opts.log.info("interface registry updates work again");
      this.#failing = false;
    } catch (err) {
      this.#opts.metrics.error("registry");
      if (!this.#failing) this.#opts.log.warn({ err }, "interface registry update failed");
      this.#failing = true;
    }
  }
}
