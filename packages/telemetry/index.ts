export { TelemetryError } from "./errors.ts";
export { createLogger, type Logger } from "./logger.ts";
export { createMetrics, type Metrics, metricPrefix, Registry } from "./metrics.ts";
export { type OpsServer, type OpsServerOptions, startOpsServer } from "./ops.ts";
export { errorReason, RateLimitedLog, type RateLimitedLogOptions } from "./ratelimit.ts";
export { runService, type ServiceMain } from "./service.ts";
