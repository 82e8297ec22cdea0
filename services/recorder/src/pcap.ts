/**
 * pcap files (libpcap format, nanosecond timestamps: magic 0xa1b23c4d, version 2.4):
 * Ethernet link type for devices with an L2 header, RAW (IPv4/IPv6 from the first
 * byte) for L3 devices; each packet keeps its original length beside the bytes captured.
 */
import { type FileHandle, open } from "node:fs/promises";

/** pcap magic number of files with nanosecond timestamps. */
export const PCAP_MAGIC_NS = 0xa1b23c4d;
/** LINKTYPE_ETHERNET. */
export const LINKTYPE_ETHERNET = 1;
/** LINKTYPE_RAW: the packet starts at its IPv4 or IPv6 header. */
export const LINKTYPE_RAW = 101;
/** Snap length written in the file header: the largest capture a packet can carry. */
export const PCAP_SNAPLEN = 65535;
/** Size of the global header and of each packet header, bytes. */
export const PCAP_FILE_HEADER = 24;
export const PCAP_PACKET_HEADER = 16;

/** The 24-byte global header of a file with `linktype`. */
export function pcapFileHeader(linktype: number, snaplen = PCAP_SNAPLEN): Uint8Array {
  const b = new Uint8Array(PCAP_FILE_HEADER);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, PCAP_MAGIC_NS, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setInt32(8, 0, true);
  dv.setUint32(12, 0, true);
  dv.setUint32(16, snaplen, true);
  dv.setUint32(20, linktype, true);
  return b;
}

/** One packet to write: Unix time in ns, the bytes captured and the original length. */
export interface PcapPacket {
  readonly tsNs: bigint;
  readonly origLen: number;
  readonly data: Uint8Array;
}

/** Encodes packets as consecutive pcap records. */
export function encodePcapRecords(packets: readonly PcapPacket[]): Uint8Array {
  let size = 0;
  for (const p of packets) size += PCAP_PACKET_HEADER + p.data.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const p of packets) {
    dv.setUint32(at, Number(p.tsNs / 1_000_000_000n), true);
    dv.setUint32(at + 4, Number(p.tsNs % 1_000_000_000n), true);
    dv.setUint32(at + 8, p.data.length, true);
    dv.setUint32(at + 12, Math.max(p.origLen, p.data.length), true);
    out.set(p.data, at + PCAP_PACKET_HEADER);
    at += PCAP_PACKET_HEADER + p.data.length;
  }
  return out;
}

/** A pcap file being written. Writes are serialised; `close` waits for them. */
export class PcapFile {
  readonly path: string;
  readonly linktype: number;
  #fh: FileHandle;
  #tail: Promise<void> = Promise.resolve();
  #error: unknown;

  private constructor(path: string, linktype: number, fh: FileHandle) {
    this.path = path;
    this.linktype = linktype;
    this.#fh = fh;
  }

  /** Creates `path` (never overwriting: EEXIST if it exists) and writes the global header. */
  static async create(path: string, linktype: number): Promise<PcapFile> {
    const fh = await open(path, "wx", 0o640);
    try {
      await fh.write(pcapFileHeader(linktype));
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new PcapFile(path, linktype, fh);
  }

  /** Appends packets; resolves once written. A failed write is thrown here and by close(). */
  write(packets: readonly PcapPacket[]): Promise<void> {
    return this.writeRecords(encodePcapRecords(packets));
  }

  /** Appends bytes that already are pcap records (header + data each). */
  writeRecords(bytes: Uint8Array): Promise<void> {
    this.#tail = this.#tail.then(async () => {
      if (this.#error !== undefined) throw this.#error;
      try {
        await this.#fh.write(bytes);
      } catch (err) {
        this.#error = err;
        throw err;
      }
    });
    return this.#tail;
  }

  /** Waits for pending writes, flushes to disk and closes. */
  async close(): Promise<void> {
    try {
      await this.#tail.catch(() => {});
      await this.#fh.sync().catch(() => {});
    } finally {
      await this.#fh.close();
    }
  }
}
