/** Raised when no NATS connection can be made . */
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
