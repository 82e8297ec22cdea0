import { FFIType, JSCallback, type Pointer, toArrayBuffer } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { isNull, lastErrno, libbpf } from "./ffi.ts";

/** Returned from the sample callback to stop ring_buffer__consume early. */
const STOP = -ERRNO.ECANCELED;

/**
 * A libbpf ring_buffer over one BPF_MAP_TYPE_RINGBUF map, drained without
 * blocking on the calling (JS) thread. The sample callback is a JSCallback
 * that libbpf calls synchronously from ring_buffer__consume, so it runs on
 * the JS thread; it must never be called from another thread.
 */
export class RingBufferReader {
  #rb: Pointer | null;
  #cb: JSCallback;
  #onRecord: ((bytes: Uint8Array) => void) | undefined;
  #remaining = 0;
  #delivered = 0;
  #error: unknown;
  #hasError = false;

  constructor(mapFd: number) {
    this.#cb = new JSCallback(
      (_ctx: Pointer | null, data: Pointer | null, size: number | bigint) =>
        this.#sample(data, Number(size)),
      { args: [FFIType.ptr, FFIType.ptr, FFIType.u64_fast], returns: FFIType.i32 },
    );
    const rb = libbpf().ring_buffer__new(mapFd, this.#cb.ptr, null, null);
    if (isNull(rb)) {
      const errno = lastErrno();
      this.#cb.close();
      throw new BpfError("ring_buffer__new", errno, `map fd ${mapFd}`);
    }
    this.#rb = rb;
  }

  #sample(data: Pointer | null, size: number): number {
    const onRecord = this.#onRecord;
    if (data === null || onRecord === undefined) return STOP;
    // The sample lives in the shared ring and is released when this returns: copy it.
    const copy = new Uint8Array(toArrayBuffer(data, 0, size)).slice();
    this.#delivered++;
    try {
      onRecord(copy);
    } catch (err) {
      this.#error = err;
      this.#hasError = true;
      return STOP;
    }
    return --this.#remaining <= 0 ? STOP : 0;
  }

  /**
   * Hands up to `max` available records to `onRecord` (copies it may keep) and
   * returns how many were handed over. Never blocks. An exception thrown by
   * `onRecord` stops the drain and is rethrown; its record counts as consumed.
   */
  drain(onRecord: (bytes: Uint8Array) => void, max = Number.POSITIVE_INFINITY): number {
    if (this.#rb === null)
      throw new BpfError("ring_buffer__consume", ERRNO.EBADF, "ring buffer is closed");
    if (max <= 0) return 0;
    this.#onRecord = onRecord;
    this.#remaining = max;
    this.#delivered = 0;
    this.#hasError = false;
    try {
      const rc = libbpf().ring_buffer__consume(this.#rb);
      if (this.#hasError) {
        const err = this.#error;
        this.#error = undefined;
        throw err;
      }
      if (rc < 0 && rc !== STOP) throw new BpfError("ring_buffer__consume", -rc);
      return this.#delivered;
    } finally {
      this.#onRecord = undefined;
    }
  }

  /** Frees the ring buffer and the callback; safe to call more than once. */
  close(): void {
    if (this.#rb !== null) {
      libbpf().ring_buffer__free(this.#rb);
      this.#rb = null;
      this.#cb.close();
    }
  }
}
