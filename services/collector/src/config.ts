import { resolve } from "node:path";
import {
  AGGREGATION_LEVELS,
  type AggregationLevel,
  type CaptureRule,
  DEFAULT_CT_ENTRIES,
  MAX_CT_ENTRIES,
  parseCaptureRule,
  SettingsError,
} from "@periscope/bpf";
import { DEFAULT_RAW_PARTITIONS } from "@periscope/bus";
import {
  type CommonConfig,
  ConfigError,
  parseCommonConfig,
  readServiceSettings,
} from "@periscope/config";
import { DEFAULT_CAPTURE, MAX_CAPTURE } from "@periscope/model";
import { MAX_CAPTURE_RULES } from "@periscope/wire";
import { type DropsMode, parseDropsMode } from "./drops.ts";
import { NETFLOW_SETTINGS, type NetflowConfig, parseNetflowConfig } from "./netflow-config.ts";
import { compilePattern, GlobError, type InterfacePattern, isGlob } from "./patterns.ts";
import { PROC_SETTINGS, type ProcessEventsConfig, parseProcessEvents } from "./proc.ts";

export { ConfigError } from "@periscope/config";
export type { InterfacePattern } from "./patterns.ts";

/** Linux IFNAMSIZ minus the terminating NUL. */
const MAX_IFNAME_LEN = 15;
/** Longest glob accepted for a device or netns name. */
const MAX_GLOB_LEN = 255;

/** An interface to attach to: `ifname` inside the named network namespace (or the current one). */
export interface InterfaceTarget {
  readonly ifname: string;
  /** Name of a netns under /run/netns; undefined means the collector's own namespace. */
  readonly netns?: string;
}

/** Validated, frozen collector configuration. Nothing else in the collector reads the environment. */
export interface CollectorConfig extends CommonConfig {
  /**
   * Devices to attach to: names or globs (`veth*`, `ns1/eth*`, `ns1/*`; the netns part
   * may be a glob too). Globs never match loopback devices; devices and namespaces that
   * appear later are attached when the kernel reports them.
   */
  readonly interfaces: readonly InterfacePattern[];
  /** Packet bytes captured per record, 1..MAX_CAPTURE (1536). */
  readonly captureLen: number;
  /**
   * Number of raw partitions (subjects periscope.raw.<node>.0 … partitions-1), 1..4096,
   * default DEFAULT_RAW_PARTITIONS; the enrichers' `--partitions` must be the same.
   */
  readonly partitions: number;
  /** A frame is sealed once it holds this many records. */
  readonly frameMaxRecords: number;
  /** A frame is sealed this many milliseconds after its first record (or loss) at the latest. */
  readonly frameMaxDelayMs: number;
  /** Frames held while NATS is slow or disconnected; beyond it frames are dropped and counted. */
  readonly publishQueueFrames: number;
  /** Path of the compiled trace program (trace.bpf.o). */
  readonly bpfObjectPath: string;
  /** Milliseconds between attempts to attach interfaces that failed. */
  readonly attachRetryMs: number;
  /**
   * Milliseconds between full rescans for devices that appeared, vanished or were recreated
   * without a notification (a safety net: notifications attach and detach at once).
   */
  readonly discoveryIntervalMs: number;
  /** Kernel drops reported: `all` namespaces (default), only `watched` ones (of attached devices), or `off`. */
  readonly drops: DropsMode;
  /** Which packets the kernel reports (monitor aggregation); default `medium`. */
  readonly aggregation: AggregationLevel;
  /** medium/maximum: at most one periodic report per active connection per interval, ms. */
  readonly aggregationIntervalMs: number;
  /** Capture-length overrides, first match wins (`udp/53=512`). */
  readonly captureRules: readonly CaptureRule[];
  /** Entries of the kernel connection table. */
  readonly ctEntries: number;
  /** Flow records: kernel accounting, eviction, export (netflow-config.ts). */
  readonly netflow: NetflowConfig;
  /** Process lifecycle and socket-owner records (`--process-events`, `--max-args`; proc.ts). */
  readonly processEvents: ProcessEventsConfig;
}

/** Default path of the trace object: <repo>/bpf/build/trace.bpf.o. */
export const DEFAULT_BPF_OBJECT = resolve(import.meta.dir, "../../../bpf/build/trace.bpf.o");

/**
 * The collector's own settings, flag name (without `--`) → environment variable; the common
 * ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR, PERISCOPE_LOG_LEVEL)
 * come from `@periscope/config`.
 */
const OWN_SETTINGS = {
  interfaces: "PERISCOPE_INTERFACES",
  "capture-len": "PERISCOPE_CAPTURE_LEN",
  partitions: "PERISCOPE_PARTITIONS",
  "frame-max-records": "PERISCOPE_FRAME_MAX_RECORDS",
  "frame-max-delay-ms": "PERISCOPE_FRAME_MAX_DELAY_MS",
  "publish-queue-frames": "PERISCOPE_PUBLISH_QUEUE_FRAMES",
  "bpf-object": "PERISCOPE_BPF_OBJECT",
  "attach-retry-ms": "PERISCOPE_ATTACH_RETRY_MS",
  "discovery-interval-ms": "PERISCOPE_DISCOVERY_INTERVAL_MS",
  drops: "PERISCOPE_DROPS",
  aggregation: "PERISCOPE_AGGREGATION",
  "aggregation-interval": "PERISCOPE_AGGREGATION_INTERVAL",
  "capture-rule": "PERISCOPE_CAPTURE_RULES",
  "ct-entries": "PERISCOPE_CT_ENTRIES",
  ...NETFLOW_SETTINGS,
  ...PROC_SETTINGS,
} as const;

/** Flags that may be given more than once; their values are joined with commas. */
const REPEATABLE = ["capture-rule"] as const;

/** `argv` with every repeatable flag folded into one `--flag a,b,...`. */
function foldRepeated(argv: readonly string[]): string[] {
  const out: string[] = [];
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const name = REPEATABLE.find((n) => arg === `--${n}` || arg.startsWith(`--${n}=`));
    if (name === undefined) {
      out.push(arg);
      continue;
    }
    let value: string | undefined;
    if (arg.includes("=")) value = arg.slice(arg.indexOf("=") + 1);
    else if (i + 1 < argv.length && !(argv[i + 1] ?? "").startsWith("--")) value = argv[++i];
    if (value === undefined) {
      out.push(arg); // let the settings reader report the missing value
      continue;
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  for (const [name, list] of values) out.push(`--${name}=${list.join(",")}`);
  return out;
}

/**
 * A duration: `<n>ms`, `<n>s`, `<n>m` or a bare number of milliseconds.
 * @throws ConfigError for `field`.
 */
export function parseDurationMs(raw: string, field: string, min: number, max: number): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(raw);
  if (!m) throw new ConfigError(field, `"${raw}" is not a duration (e.g. 500ms, 5s, 1m)`);
  const unit = m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 1;
  const ms = Math.round(Number(m[1]) * unit);
  if (ms < min || ms > max) {
    throw new ConfigError(field, `${raw} is out of range ${min}ms..${max}ms`);
  }
  return ms;
}

/**
 * Capture rules used when neither `--capture-rule` nor PERISCOPE_CAPTURE_RULES is given:
 * DNS (UDP and TCP 53) and HTTP (TCP 80 and 8080, the enricher's default L7 ports) get
 * enough bytes for a DNS message and a typical HTTP head, so L7 flows need no flags.
 * A length below `--capture-len` is raised to it.
 */
export const DEFAULT_CAPTURE_RULES = "udp/53=512,tcp/53=512,tcp/80=1024,tcp/8080=1024";

/**
 * Parses a comma list of capture rules (`udp/53=512,tcp=96`); `none` is no rules.
 * @throws ConfigError for `field` naming the bad rule.
 */
export function parseCaptureRules(raw: string, field: string): CaptureRule[] {
  const rules: CaptureRule[] = [];
  if (raw.trim().toLowerCase() === "none") return rules;
  for (const part of raw.split(",")) {
    if (part.trim() === "") continue;
    try {
      rules.push(Object.freeze(parseCaptureRule(part)));
    } catch (cause) {
      if (!(cause instanceof SettingsError)) throw cause;
      throw new ConfigError(field, cause.detail, { cause });
    }
  }
  if (rules.length > MAX_CAPTURE_RULES) {
    throw new ConfigError(field, `at most ${MAX_CAPTURE_RULES} capture rules, got ${rules.length}`);
  }
  return rules;
}

function parseAggregation(raw: string | undefined, field: string): AggregationLevel {
  const level = (raw ?? "medium").trim().toLowerCase();
  const found = AGGREGATION_LEVELS.find((l) => l === level);
  if (found === undefined) {
    throw new ConfigError(field, `"${raw}" is not one of ${AGGREGATION_LEVELS.join(", ")}`);
  }
  return found;
}

/** Linux dev_valid_name(): 1..15 bytes, not "." or "..", no "/", ":" or whitespace. */
function validIfname(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= MAX_IFNAME_LEN &&
    name !== "." &&
    name !== ".." &&
    !/[/:\s]/.test(name)
  );
}

/** iproute2 netns names are files in /run/netns: no "/", not "." or "..", no whitespace. */
function validNetns(name: string): boolean {
  return (
    name.length > 0 && name.length <= 255 && name !== "." && name !== ".." && !/[/\s]/.test(name)
  );
}

/** A glob for a name: no "/" or whitespace (and no ":" for devices), compiles. */
function validGlob(glob: string, device: boolean): boolean {
  if (glob.length === 0 || glob.length > MAX_GLOB_LEN || /[/\s]/.test(glob)) return false;
  if (device && glob.includes(":")) return false;
  return true;
}

/**
 * Parses the comma list of `[<netns>/]<ifname>`; either part may be a glob (`*`, `?`,
 * `[...]`). Empty entries are ignored, duplicates rejected: ConfigError for `field`.
 */
export function parseInterfaces(raw: string, field = "interfaces"): InterfacePattern[] {
  const out: InterfacePattern[] = [];
  const seen = new Set<string>();
  for (const part of raw.split(",")) {
    const entry = part.trim();
    if (entry === "") continue;
    const slash = entry.indexOf("/");
    const netns = slash === -1 ? undefined : entry.slice(0, slash);
    const ifname = slash === -1 ? entry : entry.slice(slash + 1);
    if (netns !== undefined && !(isGlob(netns) ? validGlob(netns, false) : validNetns(netns)))
      throw new ConfigError(field, `bad netns name in "${entry}"`);
    if (!(isGlob(ifname) ? validGlob(ifname, true) : validIfname(ifname)))
      throw new ConfigError(field, `bad interface name in "${entry}"`);
    if (seen.has(entry)) throw new ConfigError(field, `"${entry}" is listed twice`);
    seen.add(entry);
    const pattern = Object.freeze(netns === undefined ? { ifname } : { ifname, netns });
    try {
      compilePattern(pattern);
    } catch (cause) {
      if (!(cause instanceof GlobError)) throw cause;
      throw new ConfigError(field, `bad pattern "${entry}": ${cause.message}`, { cause });
    }
    out.push(pattern);
  }
  return out;
}

/** The rules given, or the defaults (lengths at least the capture length) when none were. */
function captureRules(
  raw: string | undefined,
  field: string,
  s: { integer(name: "capture-len", fallback: number, min: number, max: number): number },
): CaptureRule[] {
  if (raw !== undefined) return parseCaptureRules(raw, field);
  const captureLen = s.integer("capture-len", DEFAULT_CAPTURE, 1, MAX_CAPTURE);
  return parseCaptureRules(DEFAULT_CAPTURE_RULES, "default capture rules").map((r) =>
    Object.freeze({ ...r, len: Math.max(r.len, captureLen) }),
  );
}

/**
 * Builds the collector configuration from flags (which win) and environment.
 * @throws ConfigError naming where the bad value came from (`--capture-len` or its variable)
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): CollectorConfig {
  const s = readServiceSettings(OWN_SETTINGS, foldRepeated(argv), env);
  const interval = s.get("aggregation-interval");
  return Object.freeze({
    ...parseCommonConfig(s, "127.0.0.1:9401"),
    interfaces: Object.freeze(parseInterfaces(s.get("interfaces") ?? "", s.source("interfaces"))),
    captureLen: s.integer("capture-len", DEFAULT_CAPTURE, 1, MAX_CAPTURE),
    partitions: s.integer("partitions", DEFAULT_RAW_PARTITIONS, 1, 4096),
    frameMaxRecords: s.integer("frame-max-records", 256, 1, 65536),
    frameMaxDelayMs: s.integer("frame-max-delay-ms", 50, 1, 60_000),
    publishQueueFrames: s.integer("publish-queue-frames", 1024, 1, 1_000_000),
    bpfObjectPath: resolve(s.get("bpf-object") ?? DEFAULT_BPF_OBJECT),
    attachRetryMs: s.integer("attach-retry-ms", 5000, 100, 3_600_000),
    discoveryIntervalMs: s.integer("discovery-interval-ms", 30_000, 100, 3_600_000),
    drops: parseDropsMode(s.get("drops"), s.source("drops")),
    aggregation: parseAggregation(s.get("aggregation"), s.source("aggregation")),
    aggregationIntervalMs:
      interval === undefined
        ? 5000
        : parseDurationMs(interval, s.source("aggregation-interval"), 0, 0xffffffff),
    captureRules: Object.freeze(captureRules(s.get("capture-rule"), s.source("capture-rule"), s)),
    ctEntries: s.integer("ct-entries", DEFAULT_CT_ENTRIES, 1, MAX_CT_ENTRIES),
    netflow: parseNetflowConfig(s),
    processEvents: parseProcessEvents(s),
  });
}

/** The config of this process (command line and environment). */
export function loadConfig(): CollectorConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
