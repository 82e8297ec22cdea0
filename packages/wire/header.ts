/**
 * `struct pscope_hdr`, the common header of every kernel record. Kept apart from
 * layout.ts so the record checks can use it without importing the constants.
 */
import type { StructLayout } from "./layout.ts";

/** Size of `struct pscope_hdr`, the common header of every record, bytes. */
export const HDR_SIZE = 16;
/** `struct pscope_hdr` (16 bytes, little-endian host order). */
export const HDR_LAYOUT = {
  size: HDR_SIZE,
  fields: {
    type: { offset: 0, size: 1 },
    subtype: { offset: 1, size: 1 },
    version: { offset: 2, size: 1 },
    flags: { offset: 3, size: 1 },
    source: { offset: 4, size: 4 },
    orig_len: { offset: 8, size: 4 },
    cap_len: { offset: 12, size: 4 },
  },
} as const satisfies StructLayout;
