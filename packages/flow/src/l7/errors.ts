/**
 * Why a payload was not turned into an L7 record:
 * - `truncated`: the capture (or the message) ends before what is needed;
 * - `tls`: a TLS record where cleartext HTTP was expected;
 * - `http2`: the HTTP/2 connection preface or frames;
 * - `split`: a message spread over packets that could not be put back together
 *   (a missing segment, or more than the reassembly bound);
 * - `malformed`: bytes that are not a valid message.
 */
export type L7UnparsedReason = "truncated" | "tls" | "http2" | "split" | "malformed";

/** Every reason, for metrics that are pre-registered per reason. */
export const L7_UNPARSED_REASONS: readonly L7UnparsedReason[] = [
  "truncated",
  "tls",
  "http2",
  "split",
  "malformed",
];

/** The only error the L7 parsers throw: the payload was not a usable message. */
export class L7ParseError extends Error {
  override readonly name = "L7ParseError";
  constructor(
    /** Protocol the payload was parsed as. */
    readonly protocol: "dns" | "http",
    /** Why it could not be parsed. */
    readonly reason: L7UnparsedReason,
    message: string,
  ) {
    super(`${protocol}: ${reason}: ${message}`);
  }
}
