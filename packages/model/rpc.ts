/**
 * gRPC status codes by number, as the snake_case labels metrics and error
 * lines use (`ok`, `invalid_argument`, `canceled`, ...). The numbers are
 * gRPC's canonical ones, which connect's `Code` enum shares.
 * https://grpc.github.io/grpc/core/md_doc_statuscodes.html
 */
const RPC_CODE_LABELS: readonly string[] = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** `3` → `invalid_argument`; the number as text for codes gRPC does not define. */
export function rpcCodeLabel(code: number): string {
  return RPC_CODE_LABELS[code] ?? String(code);
}
