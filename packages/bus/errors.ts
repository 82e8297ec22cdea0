/** Raised when a local nats-server cannot be started or stopped. */
export class LocalNatsError extends Error {
  override name = "LocalNatsError";
}

/** Raised when no NATS connection can be made (after trying to start a local server, if allowed). */
export class BusConnectError extends Error {
  override name = "BusConnectError";
}

/** Raised for subject tokens or endpoint records that cannot be used. */
export class BusInputError extends Error {
  override name = "BusInputError";
}

/** Raised when a JetStream stream or durable consumer cannot be created or updated. */
export class BusStreamError extends Error {
  override name = "BusStreamError";
}
