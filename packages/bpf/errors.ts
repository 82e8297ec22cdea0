import { constants } from "node:os";

/** errno numbers by name (Linux), e.g. `ERRNO.ENOENT`. */
export const ERRNO = constants.errno;

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** Symbolic name of an errno value (`ENOENT`), or `errno <n>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/**
 * A failed libbpf, libc or kernel call. `call` names the function that failed,
 * `errno` is the positive error number (0 when none was reported).
 */
export class BpfError extends Error {
  override readonly name = "BpfError";
  readonly call: string;
  readonly errno: number;

  constructor(call: string, errno: number, detail?: string, options?: { cause?: unknown }) {
    const what = errno !== 0 ? `${errnoName(errno)} (${errno})` : "failed";
    super(`${call}: ${what}${detail ? `: ${detail}` : ""}`, options);
    this.call = call;
    this.errno = errno;
  }
}
