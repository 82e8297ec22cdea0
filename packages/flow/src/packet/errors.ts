/**
 * A packet could not be decoded: a header is malformed (bad version, length
 * fields pointing outside the header, ...) or there is no packet at all.
 * Running out of captured bytes is not an error: decoding stops at the last
 * complete layer and the result is marked truncated.
 */
export class PacketDecodeError extends Error {
  override readonly name = "PacketDecodeError";
  /** The layer that was being decoded, e.g. "ipv4". */
  readonly layer: string;

  constructor(layer: string, message: string, options?: { cause?: unknown }) {
    super(`${layer}: ${message}`, options);
    this.layer = layer;
  }
}
