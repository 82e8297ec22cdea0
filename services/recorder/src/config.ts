import { isAbsolute, resolve } from "node:path";
import {
  type CommonConfig,
  ConfigError,
  checkHostPort,
  parseCommonConfig,
  readServiceSettings,
} from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** Recorder settings, parsed once at start-up. */
export interface RecorderConfig extends CommonConfig {
  /** `host:port` of the recorder.Recorder gRPC/Connect API; port 0 picks a free port. */
  readonly listenAddr: string;
  /** Directory the pcap files are written to (absolute). */
  readonly storageDir: string;
  /** Collectors drop a recording's filters when not renewed for this long, ms. */
  readonly leaseMs: number;
  /** Packets waiting to be written per recording; beyond it they are counted lost. */
  readonly writeQueuePackets: number;
}

/**
 * The recorder's own settings, flag name (without `--`) → environment variable. The common
 * ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR, PERISCOPE_LOG_LEVEL)
 * come from `@periscope/config`.
 */
const OWN_SETTINGS = {
  "listen-address": "PERISCOPE_RECORDER_LISTEN_ADDR",
  "storage-dir": "PERISCOPE_RECORDER_STORAGE_DIR",
  "lease-ms": "PERISCOPE_RECORDER_LEASE_MS",
  "write-queue-packets": "PERISCOPE_RECORDER_WRITE_QUEUE",
} as const;

export const DEFAULT_OPS_ADDR = "127.0.0.1:9404";

/** Defaults of the recorder's own settings. */
export const RECORDER_DEFAULTS = Object.freeze({
  listenAddr: "localhost:4246",
  storageDir: "/var/run/periscope/pcaps",
  leaseMs: 3000,
  writeQueuePackets: 65536,
});

/**
 * Parses flags (which win) and environment into a frozen config; throws ConfigError
 * whose `field` is where the bad value came from (`--ops-addr` or `PERISCOPE_OPS_ADDR`).
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RecorderConfig {
  const s = readServiceSettings(OWN_SETTINGS, argv, env);
  const d = RECORDER_DEFAULTS;
  const dir = s.get("storage-dir") ?? d.storageDir;
  if (dir.trim() === "") throw new ConfigError(s.source("storage-dir"), "must not be empty");
  return Object.freeze({
    ...parseCommonConfig(s, DEFAULT_OPS_ADDR),
    listenAddr: checkHostPort(s.source("listen-address"), s.get("listen-address") ?? d.listenAddr, {
      allowPortZero: true,
    }),
    storageDir: isAbsolute(dir) ? dir : resolve(dir),
    leaseMs: s.integer("lease-ms", d.leaseMs, 500, 600_000),
    writeQueuePackets: s.integer("write-queue-packets", d.writeQueuePackets, 16, 1 << 24),
  });
}

/** The config of this process (command line and environment). */
export function loadConfig(): RecorderConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
