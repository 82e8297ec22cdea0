/**
 * The `google.protobuf.Any` holding a `periscope.process.v1.Process`, encoded field by field
 * into a buffer of its own: the same bytes as `toBinary(AnySchema, …)` of the same values
 * (process-encode.test.ts holds it to that), without building messages first. It runs
 * for a socket's first flow, while the flow batch is being written into the compiled
 * encoders' shared buffer, so it must not use that one.
 */
import type { processV1 } from "@periscope/proto";

/** Field values of a Container (the generated message's, without its bookkeeping). */
export type ContainerFields = Omit<processV1.Container, "$typeName" | "$unknown">;

/** Field values of a Process (zero values are left out, as proto3 does). */
export type ProcessFields = Omit<processV1.Process, "$typeName" | "$unknown" | "container"> & {
  container?: ContainerFields;
};

const utf8 = new TextEncoder();

/** A growable byte buffer with protobuf's primitives. */
class Out {
  buf = new Uint8Array(256);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  varint(v: number): void {
    this.room(5);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  varint64(v: bigint): void {
    this.room(10);
    // As two 32-bit halves: no bigint made per 7 bits.
    const x = BigInt.asUintN(64, v);
    let lo = Number(x & 0xffff_ffffn);
    let hi = Number(x >> 32n);
    while (hi !== 0 || lo > 0x7f) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.pos++] = lo;
  }

  /** Tag and length of field `no`, then the bytes written by `body` (none at all when `omitEmpty` and it wrote none). */
  nested(no: number, body: () => void, omitEmpty = false): void {
    const start = this.pos;
    this.varint((no << 3) | 2);
    // A length below 128 takes one byte: reserve it, move the body if it is longer.
    const at = this.pos;
    this.room(1);
    this.pos++;
    body();
    const len = this.pos - at - 1;
    if (len === 0 && omitEmpty) {
      this.pos = start;
      return;
    }
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    const body_ = this.buf.slice(at + 1, this.pos);
    this.pos = at;
    this.varint(len);
    this.room(len);
    this.buf.set(body_, this.pos);
    this.pos += len;
  }

  string(no: number, s: string): void {
    if (s === "") return;
    this.stringAlways(no, s);
  }

  /** A string written also when empty (repeated and map entries). */
  stringAlways(no: number, s: string): void {
    this.varint((no << 3) | 2);
    // ASCII (paths, names, most arguments) is copied as is.
    const n = s.length;
    if (n < 0x80) {
      this.room(1 + n);
      const b = this.buf;
      let at = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const ch = s.charCodeAt(i);
        if (ch >= 0x80) break;
        b[at++] = ch;
      }
      if (i === n) {
        b[this.pos] = n;
        this.pos = at;
        return;
      }
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.room(5 + s.length * 3);
    const lenAt = this.pos;
    const guess = s.length * 3 < 0x80 ? 1 : s.length * 3 < 0x4000 ? 2 : 3;
    const { written } = utf8.encodeInto(s, this.buf.subarray(lenAt + guess));
    const need = written < 0x80 ? 1 : written < 0x4000 ? 2 : 3;
    if (need !== guess) this.buf.copyWithin(lenAt + need, lenAt + guess, lenAt + guess + written);
    this.varint(written);
    this.pos = lenAt + need + written;
  }

  uint32(no: number, v: number): void {
    if (v === 0) return;
    this.varint(no << 3);
    this.varint(v >>> 0);
  }

  uint64(no: number, v: bigint): void {
    if (v === 0n) return;
    this.varint(no << 3);
    this.varint64(v);
  }

  bool(no: number, v: boolean): void {
    if (!v) return;
    this.varint(no << 3);
    this.varint(1);
  }
}

function writeContainer(o: Out, c: ContainerFields): void {
  o.string(1, c.id);
  o.string(2, c.name);
  o.string(3, c.image);
  o.string(4, c.runtime);
  for (const [k, v] of Object.entries(c.labels)) {
    o.nested(5, () => {
      o.stringAlways(1, k);
      o.stringAlways(2, v);
    });
  }
  o.string(6, c.state);
}

function writeProcess(o: Out, p: ProcessFields): void {
  o.uint32(1, p.pid);
  o.uint32(2, p.tgid);
  o.uint32(3, p.ppid);
  o.string(4, p.comm);
  o.string(5, p.binary);
  for (const a of p.args) o.stringAlways(6, a);
  o.bool(7, p.argsTruncated);
  o.uint32(8, p.uid);
  o.uint32(9, p.gid);
  o.uint32(10, p.euid);
  o.uint32(11, p.egid);
  o.uint64(12, p.cgroupId);
  o.string(13, p.cgroupPath);
  o.uint64(14, p.startTimeNs);
  const c = p.container;
  if (c !== undefined) o.nested(15, () => writeContainer(o, c));
  o.string(16, p.socketSource);
  o.uint32(17, p.nsPid);
}

/** One buffer for every call (the encoding is synchronous and calls nothing outside). */
const out = new Out();

/** The encoded Any (`typeUrl`, the Process as its value). */
export function encodeProcessAny(typeUrl: string, p: ProcessFields): Uint8Array {
  const o = out;
  o.pos = 0;
  if (o.buf.length > 64 * 1024) o.buf = new Uint8Array(256);
  o.string(1, typeUrl);
  o.nested(2, () => writeProcess(o, p), true);
  return o.buf.slice(0, o.pos);
}
