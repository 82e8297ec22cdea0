/** Raised for bad telemetry settings (log level, metric names, ops address) and ops server failures. */
export class TelemetryError extends Error {
  override name = "TelemetryError";
}
