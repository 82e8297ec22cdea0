import pino from "pino";
import { TelemetryError } from "./errors.ts";

/** The structured logger every service and package uses (pino). */
export type Logger = pino.Logger;

/** Level names accepted by {@link createLogger}, lowest priority last. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** True when `level` is one of {@link LOG_LEVELS}. */
export function isLogLevel(level: string): level is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(level);
}

/**
 * A pino logger writing one JSON object per line to stdout. Every line carries
 * `service` (and pino's `pid`, `hostname`, `time` in ISO 8601).
 * Throws {@link TelemetryError} for an unknown level.
 */
export function createLogger(service: string, level = "info"): Logger {
  if (!isLogLevel(level)) {
    throw new TelemetryError(
      `unknown log level "${level}" (expected one of ${LOG_LEVELS.join(", ")})`,
    );
  }
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
