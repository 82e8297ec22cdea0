/** A command the devstack ran failed (exit code, stderr in the message). */
export class DevstackError extends Error {
  override name = "DevstackError";
}

/** A polled condition did not hold before its deadline. */
export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/** Thrown by a {@link waitFor} predicate to stop waiting at once (e.g. the process died). */
export class WaitAbortedError extends Error {
  override name = "WaitAbortedError";
}

/** A local nats-server could not be started or stopped. */
export class LocalNatsError extends Error {
  override name = "LocalNatsError";
}
