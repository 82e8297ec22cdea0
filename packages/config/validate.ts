import { hostname } from "node:os";
import { ConfigError } from "./errors.ts";
import { parseHostPort } from "./host-port.ts";
import { isLogLevel, LOG_LEVELS, type LogLevel } from "./log-level.ts";

/** URL schemes a NATS client dials. */
const NATS_SCHEMES = ["nats:", "tls:", "ws:", "wss:"];

/**
 * A decimal integer in `min..max` (surrounding white space allowed); no sign, no fraction.
 * Throws {@link ConfigError} for `field`.
 */
export function parseInteger(field: string, raw: string, min: number, max: number): number {
  const text = raw.trim();
  if (!/^\d+$/.test(text)) throw new ConfigError(field, `"${raw}" is not an integer`);
  const n = Number(text);
  if (n < min || n > max) throw new ConfigError(field, `${n} is outside ${min}..${max}`);
  return n;
}

/** A decimal integer in `1..max`; see {@link parseInteger}. */
export function parsePositiveInteger(
  field: string,
  raw: string,
  max = Number.MAX_SAFE_INTEGER,
): number {
  return parseInteger(field, raw, 1, max);
}

/** Options for {@link checkHostPort}. */
export interface HostPortOptions {
  /** Accept port 0 ("any free port"), for addresses the service listens on. Default false. */
  readonly allowPortZero?: boolean;
}

/**
 * Checks `host:port`, `[v6]:port` or `:port` (the forms {@link parseHostPort} takes) and returns `raw` unchanged. Throws {@link ConfigError} for `field`.
 */
export function checkHostPort(field: string, raw: string, options: HostPortOptions = {}): string {
  let port: number;
  try {
    port = parseHostPort(raw).port;
  } catch (cause) {
    throw new ConfigError(field, `"${raw}" is not host:port`, { cause });
  }
  if (port === 0 && !options.allowPortZero) {
    throw new ConfigError(field, `"${raw}" needs a port other than 0`);
  }
  return raw;
}

/**
 * Checks a NATS server URL or comma list of them: each `nats|tls|ws|wss://host[:port]`.
 * Returns `raw` unchanged. Throws {@link ConfigError} for `field`.
 */
export function checkNatsUrl(field: string, raw: string): string {
  for (const part of raw.split(",")) {
    const entry = part.trim();
    let url: URL;
    try {
      url = new URL(entry);
    } catch (cause) {
      throw new ConfigError(field, `"${entry}" is not a nats:// URL`, { cause });
    }
    if (!NATS_SCHEMES.includes(url.protocol)) {
      throw new ConfigError(field, `"${entry}" has unsupported scheme "${url.protocol}"`);
    }
    if (url.hostname === "") throw new ConfigError(field, `"${entry}" has no host`);
  }
  return raw;
}

/** One of {@link LOG_LEVELS}. Throws {@link ConfigError} for `field`. */
export function parseLogLevel(field: string, raw: string): LogLevel {
  if (!isLogLevel(raw)) {
    throw new ConfigError(field, `"${raw}" is not one of ${LOG_LEVELS.join(", ")}`);
  }
  return raw;
}

/** The node name as given, else the hostname; blank is a {@link ConfigError} for `field`. */
export function resolveNodeName(field: string, raw: string | undefined): string {
  const name = raw ?? hostname();
  if (name.trim() === "") throw new ConfigError(field, "must not be empty");
  return name;
}
