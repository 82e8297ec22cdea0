import { isLogLevel, LOG_LEVELS, type LogLevel } from "@periscope/config";
import pino from "pino";
import { TelemetryError } from "./errors.ts";

/** Level names {@link createLogger} takes (defined with the settings in @periscope/config). */
export type { LogLevel };

/** The structured logger every service and package uses (pino). */
export type Logger = pino.Logger;

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
