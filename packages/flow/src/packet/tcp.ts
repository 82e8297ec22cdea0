import { PacketDecodeError } from "./errors.ts";
import type { Span, TcpHeader } from "./types.ts";
import { readU8, readU16, spanLength } from "./types.ts";

/** Bytes needed for ports, data offset and flags. */
const TCP_FLAGS_END = 14;

/**
 * Decode the TCP ports and flags. Returns undefined when the capture ends
 * before the flags byte. Throws PacketDecodeError for a data offset below the
 * 20-byte minimum header.
 */
export function decodeTcp(span: Span): TcpHeader | undefined {
  if (spanLength(span) < TCP_FLAGS_END) return undefined;
  const { bytes, offset } = span;
  const offsetByte = readU8(bytes, offset + 12);
  const dataOffset = (offsetByte >> 4) * 4;
  if (dataOffset < 20) throw new PacketDecodeError("tcp", `data offset ${dataOffset} < 20`);
  const flags = readU8(bytes, offset + 13);
  return {
    kind: "tcp",
    sourcePort: readU16(bytes, offset),
    destinationPort: readU16(bytes, offset + 2),
    flags: {
      FIN: (flags & 0x01) !== 0,
      SYN: (flags & 0x02) !== 0,
      RST: (flags & 0x04) !== 0,
      PSH: (flags & 0x08) !== 0,
      ACK: (flags & 0x10) !== 0,
      URG: (flags & 0x20) !== 0,
      ECE: (flags & 0x40) !== 0,
      CWR: (flags & 0x80) !== 0,
      NS: (offsetByte & 0x01) !== 0,
    },
  };
}
