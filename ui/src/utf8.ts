/**
 * UTF-8 decoding for the protobuf runtime in the stream worker: a flow carries a dozen
 * short ASCII strings (names, addresses, summaries), for which a plain loop is several
 * times cheaper than a TextDecoder call; anything longer or not ASCII goes to TextDecoder.
 */
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";

/** Strings up to this many bytes take the loop. */
const SHORT = 48;
const decoder = new TextDecoder();

/** The text of UTF-8 `bytes` (malformed sequences become U+FFFD, as TextDecoder does). */
export function decodeUtf8(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n > SHORT) return decoder.decode(bytes);
  let s = "";
  for (let i = 0; i < n; i++) {
    const b = bytes[i] as number;
    if (b >= 0x80) return decoder.decode(bytes);
    s += String.fromCharCode(b);
  }
  return s;
}

/** Makes the protobuf runtime decode strings with {@link decodeUtf8} (call before decoding). */
export function useFastUtf8(): void {
  configureTextEncoding({ ...getTextEncoding(), decodeUtf8 });
}
