import { existsSync } from "node:fs";
import type { EndpointInfo } from "@periscope/model";

/** Runtimes a cgroup path can name. */
export type ContainerRuntime = "docker" | "containerd" | "cri-o" | "podman" | "systemd";

/** Lifecycle states of a container (Docker's, with "destroyed" once it is removed). */
export type ContainerState = "created" | "running" | "paused" | "exited" | "destroyed" | "";

/** A container as the cache knows it. */
export interface ContainerInfo {
  /** Full id (64 hex digits), or the unit name for systemd. */
  id: string;
  runtime: ContainerRuntime;
  /** Name without the leading "/"; "" until the engine told. */
  name: string;
  image: string;
  labels: Record<string, string>;
  state: ContainerState;
  /** Addresses on the engine's networks (IPv4 and IPv6), from inspect. */
  ips?: string[];
}

/** A lifecycle change of one container. */
export interface ContainerEvent {
  state: Exclude<ContainerState, "">;
  container: ContainerInfo;
  /** Unix ms of the change (the engine's time when it said). */
  timeMs: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const SCOPED = /^(docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$/;
const RUNTIME_OF_PREFIX: Record<string, ContainerRuntime> = {
  docker: "docker",
  "cri-containerd": "containerd",
  crio: "cri-o",
  libpod: "podman",
};

/**
 * The container a cgroup v2 path belongs to, from its components (innermost container
 * wins): `docker-<id>.scope` (systemd driver) or `/docker/<id>` (cgroupfs driver),
 * `cri-containerd-<id>.scope` or `/kubepods/.../<id>` (containerd/CRI), `crio-<id>.scope`,
 * `libpod-<id>.scope` or `/libpod_parent/libpod-<id>` (Podman), and otherwise the innermost
 * systemd `.scope`/`.service` unit under a `.slice` (runtime "systemd"). Undefined for the root,
 * plain directories and Podman's conmon scopes.
 */
export function parseCgroupPath(
  path: string,
): { id: string; runtime: ContainerRuntime } | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i] as string;
    const scoped = SCOPED.exec(p);
    if (scoped)
      return {
        id: scoped[2] as string,
        runtime: RUNTIME_OF_PREFIX[scoped[1] as string] as ContainerRuntime,
      };
    if (p.startsWith("libpod-") && HEX64.test(p.slice(7)))
      return { id: p.slice(7), runtime: "podman" };
    if (HEX64.test(p)) {
      const parent = parts[i - 1] ?? "";
      if (parent === "docker") return { id: p, runtime: "docker" };
      if (parts.some((q) => q.startsWith("kubepods"))) return { id: p, runtime: "containerd" };
      if (parent === "libpod_parent") return { id: p, runtime: "podman" };
      return { id: p, runtime: "docker" };
    }
  }
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i] as string;
    if (p.startsWith("libpod-conmon-")) return undefined;
    if (
      (p.endsWith(".scope") || p.endsWith(".service")) &&
      parts.slice(0, i).every((q) => q.endsWith(".slice"))
    ) {
      return { id: p, runtime: "systemd" };
    }
  }
  return undefined;
}

/** The engine answered a request with an HTTP error. */
class EngineHttpError extends Error {
  override name = "EngineHttpError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Docker's event actions → container states. */
const STATE_OF_ACTION: Record<string, Exclude<ContainerState, "">> = {
  create: "created",
  start: "running",
  unpause: "running",
  restart: "running",
  pause: "paused",
  // `kill` is a signal sent, which the process may survive (HUP, WINCH, stop's grace
  // period): `die` says it ended.
  die: "exited",
  stop: "exited",
  destroy: "destroyed",
};

/** Options of a ContainerCache. */
export interface ContainerCacheOptions {
  /** Docker engine API socket; default /var/run/docker.sock (used only when present). */
  dockerSocket?: string;
  /** How long a destroyed container still resolves. Default 60 s. */
  retainMs?: number;
}

/** Listener of container lifecycle events. */
export type ContainerListener = (event: ContainerEvent) => void;

/**
 * cgroup path → container, with name, image, labels and state from the Docker engine
 * API when its socket is there (inspected once per container, then kept current from the
 * engine's event stream). `subscribe` hands out the lifecycle changes.
 */
export class ContainerCache {
  private readonly byPath = new Map<string, ContainerInfo | null>();
  private readonly byId = new Map<string, ContainerInfo>();
  private readonly byIp = new Map<string, ContainerInfo>();
  /** The state last announced per container id. */
  private readonly lastState = new Map<string, ContainerState>();
  /** Unix ns the listing began at: events before it are in the listing. */
  private firstNs = 0;
  private readonly listeners = new Set<ContainerListener>();
  private readonly socket: string;
  private readonly retainMs: number;
  private events?: AbortController;
  private readonly pending = new Set<string>();
  /** Engine API requests that failed (counted, never thrown to lookups). */
  apiErrors = 0;
  /** Lifecycle events handed to listeners. */
  eventsSeen = 0;

  constructor(opts: ContainerCacheOptions = {}) {
    this.socket = opts.dockerSocket ?? "/var/run/docker.sock";
    this.retainMs = opts.retainMs ?? 60_000;
  }

  /** The Docker engine socket exists. */
  get dockerPresent(): boolean {
    return existsSync(this.socket);
  }

  /** Calls `listener` for every lifecycle change; returns the unsubscribe function. */
  subscribe(listener: ContainerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The container of cgroup `path`, undefined for host processes. Docker containers not
   * yet inspected are inspected in the background (name/image/labels appear on a later lookup).
   */
  lookup(path: string): ContainerInfo | undefined {
    const hit = this.byPath.get(path);
    if (hit !== undefined) return hit ?? undefined;
    const parsed = parseCgroupPath(path);
    if (parsed === undefined) {
      this.byPath.set(path, null);
      return undefined;
    }
    let info = this.byId.get(parsed.id);
    if (info === undefined) {
      info = { ...parsed, name: "", image: "", labels: {}, state: "" };
      if (parsed.runtime === "systemd") info.name = parsed.id;
      this.byId.set(parsed.id, info);
      if (parsed.runtime === "docker" && this.dockerPresent) void this.inspect(parsed.id);
    }
    this.byPath.set(path, info);
    return info;
  }

  /** The container with id `id` (full id), if known. */
  byContainerId(id: string): ContainerInfo | undefined {
    return this.byId.get(id);
  }

  /**
   * Endpoint metadata of a Docker container's address, for hosts without Kubernetes:
   * namespace = compose project (label `com.docker.compose.project`) or "docker", pod = the
   * container name, labels = the container's labels as "key=value".
   */
  endpoint(ip: string): EndpointInfo | undefined {
    const c = this.byIp.get(ip);
    if (c === undefined || c.state === "destroyed") return undefined;
    return {
      namespace: c.labels["com.docker.compose.project"] ?? "docker",
      podName: c.name,
      labels: Object.entries(c.labels).map(([k, v]) => `${k}=${v}`),
    };
  }

  /** Containers known (any state). */
  list(): ContainerInfo[] {
    return [...this.byId.values()];
  }

  /**
   * Lists the engine's containers and follows its event stream until `stop`.
   * Resolves once the list is in; without the socket it resolves at once (nothing to follow).
   */
  async start(): Promise<void> {
    if (!this.dockerPresent) return;
    this.events = new AbortController();
    // Events from the moment the listing starts (ns, not the whole second: changes earlier
    // in that second are in the listing and must not come again as changes).
    const sinceNs = Date.now() * 1e6;
    this.firstNs = sinceNs;
    try {
      const list = (await this.api("/containers/json?all=1")) as Array<{ Id: string }>;
      await Promise.all(list.map((c) => this.inspect(c.Id)));
      for (const c of this.byId.values()) {
        if (c.runtime === "docker" && c.state !== "") this.lastState.set(c.id, c.state);
      }
    } catch {
      this.apiErrors++;
    }
    void this.follow(sinceNs, this.events.signal);
  }

  /** Stops following the engine. */
  stop(): void {
    this.events?.abort();
    this.events = undefined;
  }

  private async api(path: string, signal?: AbortSignal): Promise<unknown> {
    const res = await fetch(`http://docker${path}`, { unix: this.socket, signal } as RequestInit);
    if (!res.ok) throw new EngineHttpError(`docker ${path}: HTTP ${res.status}`, res.status);
    return res.json();
  }

  /** Inspects container `id`; `goneOk`: a container removed meanwhile (404) is no error. */
  private async inspect(id: string, goneOk = false): Promise<ContainerInfo | undefined> {
    if (this.pending.has(id)) return this.byId.get(id);
    this.pending.add(id);
    try {
      const c = (await this.api(`/containers/${id}/json`)) as {
        Id: string;
        Name?: string;
        Config?: { Image?: string; Labels?: Record<string, string> | null };
        State?: { Status?: string };
        NetworkSettings?: {
          Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> | null;
        };
      };
      const info = this.byId.get(c.Id) ?? {
        id: c.Id,
        runtime: "docker" as const,
        name: "",
        image: "",
        labels: {},
        state: "" as ContainerState,
      };
      info.name = (c.Name ?? "").replace(/^\//, "");
      info.image = c.Config?.Image ?? "";
      info.labels = c.Config?.Labels ?? {};
      const status = c.State?.Status ?? "";
      info.state =
        status === "restarting" || status === "removing" ? "running" : (status as ContainerState);
      if (status === "dead") info.state = "exited";
      const ips: string[] = [];
      for (const n of Object.values(c.NetworkSettings?.Networks ?? {})) {
        if (n.IPAddress) ips.push(n.IPAddress);
        if (n.GlobalIPv6Address) ips.push(n.GlobalIPv6Address);
      }
      // Addresses of networks it left no longer name it.
      for (const ip of info.ips ?? []) {
        if (!ips.includes(ip) && this.byIp.get(ip) === info) this.byIp.delete(ip);
      }
      info.ips = ips;
      for (const ip of ips) this.byIp.set(ip, info);
      this.byId.set(c.Id, info);
      return info;
    } catch (err) {
      if (!(goneOk && err instanceof EngineHttpError && err.status === 404)) this.apiErrors++;
      return undefined;
    } finally {
      this.pending.delete(id);
    }
  }

  /**
   * Follows the engine's events from `since` (Unix ns; after a broken stream, from the last
   * event's time: one repeated is a repeat of the state it set, and skipped).
   */
  private async follow(since: number, signal: AbortSignal): Promise<void> {
    // Network connect/disconnect change a container's addresses (no change of state).
    const filters = encodeURIComponent(JSON.stringify({ type: ["container", "network"] }));
    while (!signal.aborted) {
      try {
        const res = await fetch(
          `http://docker/events?since=${engineTime(since)}&filters=${filters}`,
          {
            unix: this.socket,
            signal,
          } as RequestInit,
        );
        if (!res.ok || res.body === null) throw new Error(`docker /events: HTTP ${res.status}`);
        const decoder = new TextDecoder();
        let buf = "";
        for await (const chunk of res.body) {
          buf += decoder.decode(chunk, { stream: true });
          let nl = buf.indexOf("\n");
          while (nl >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line !== "") since = await this.onEvent(line, since);
            nl = buf.indexOf("\n");
          }
        }
      } catch {
        if (signal.aborted) return;
        this.apiErrors++;
      }
      if (!signal.aborted) await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Unix ns, the next `since` (the event's time, else `since`). */
  private async onEvent(line: string, since: number): Promise<number> {
    let ev: {
      Action?: string;
      id?: string;
      time?: number;
      timeNano?: number;
      Type?: string;
      Actor?: { ID?: string; Attributes?: Record<string, string> };
    };
    try {
      ev = JSON.parse(line);
    } catch {
      this.apiErrors++;
      return since;
    }
    const action = (ev.Action ?? "").split(":")[0] ?? "";
    if (ev.Type === "network") {
      const ct = ev.Actor?.Attributes?.container ?? "";
      if ((action === "connect" || action === "disconnect") && this.byId.has(ct)) {
        await this.inspect(ct, true);
      }
      return eventNs(ev) ?? since;
    }
    const state = STATE_OF_ACTION[action];
    const id = ev.Actor?.ID ?? ev.id ?? "";
    const at = eventNs(ev);
    const next = at ?? since;
    if (state === undefined || !HEX64.test(id)) return next;
    // Older than the listing (an engine rounding `since` down): the listing has it.
    if (at !== undefined && at < this.firstNs) return next;
    let info = this.byId.get(id);
    // kill, die and stop each say "exited": one event per change of state.
    const before = this.lastState.get(id) ?? "";
    if (state === "destroyed") this.lastState.delete(id);
    else this.lastState.set(id, state);
    if (before === state) return next;
    // Addresses are given at start (networks connect then): inspected again when running.
    if (state !== "destroyed" && (info === undefined || info.name === "" || state === "running"))
      info = (await this.inspect(id)) ?? info;
    info ??= { id, runtime: "docker", name: "", image: "", labels: {}, state: "" };
    info.state = state;
    this.byId.set(id, info);
    if (state === "destroyed") {
      const gone = info;
      setTimeout(() => {
        if (this.byId.get(id) === gone) this.byId.delete(id);
        for (const ip of gone.ips ?? []) if (this.byIp.get(ip) === gone) this.byIp.delete(ip);
        for (const [p, c] of this.byPath) if (c === gone) this.byPath.delete(p);
      }, this.retainMs).unref?.();
    }
    this.eventsSeen++;
    const event: ContainerEvent = {
      state,
      container: info,
      timeMs: Math.floor(next / 1e6),
    };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // a listener's failure is its own
      }
    }
    return next;
  }
}

/** An event's time, Unix ns (`timeNano`, else `time` in seconds), undefined without one. */
function eventNs(ev: { time?: number; timeNano?: number }): number | undefined {
  if (typeof ev.timeNano === "number") return ev.timeNano;
  return typeof ev.time === "number" ? ev.time * 1e9 : undefined;
}

/**
 * Unix ns as the engine's `since` takes it: "<seconds>.<nanoseconds>" (a float's ns are
 * good to ~256 ns at today's times; an event repeated by it is skipped as a repeat).
 */
export function engineTime(ns: number): string {
  const sec = Math.floor(ns / 1e9);
  const frac = Math.max(0, Math.floor(ns - sec * 1e9));
  return `${sec}.${String(frac).padStart(9, "0")}`;
}
