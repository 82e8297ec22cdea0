import { cc, FFIType, type Pointer } from "bun:ffi";
import { join } from "node:path";

/** The native run copier (native/ring-copy.c), see {@link ringCopyNative}. */
export type RingCopyFn = (
  consumerPos: Pointer,
  producerPos: Pointer,
  data: Pointer,
  mask: number,
  dst: Pointer,
  dstCap: number,
  maxRecords: number,
  out: Pointer,
) => void;

let compiled: RingCopyFn | null | undefined;
let failure: unknown;

/**
 * native/ring-copy.c compiled with bun:ffi's cc (TinyCC, built into Bun) on first use;
 * undefined when that is not possible here (then readers fall back to JS, slower).
 * Only for x86-64, whose memory ordering the C code relies on.
 */
export function ringCopyNative(): RingCopyFn | undefined {
  if (compiled === undefined) {
    compiled = null;
    if (process.arch === "x64") {
      try {
        const lib = cc({
          source: join(import.meta.dir, "native", "ring-copy.c"),
          symbols: {
            pscope_ring_copy: {
              args: [
                FFIType.ptr,
                FFIType.ptr,
                FFIType.ptr,
                FFIType.u64_fast,
                FFIType.ptr,
                FFIType.u64_fast,
                FFIType.u64_fast,
                FFIType.ptr,
              ],
              returns: FFIType.void,
            },
          },
        });
        compiled = lib.symbols.pscope_ring_copy as unknown as RingCopyFn;
      } catch (err) {
        failure = err;
      }
    }
  }
  return compiled ?? undefined;
}

/** Why the native copier is not available (undefined when it is, or was never tried). */
export function ringCopyNativeFailure(): unknown {
  return failure;
}
