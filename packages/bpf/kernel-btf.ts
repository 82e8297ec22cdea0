import { type Pointer, read } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { cString, isNull, lastErrno, libbpf } from "./ffi.ts";

/** The running kernel's BTF. */
export const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";

/** BTF kinds (include/uapi/linux/btf.h). */
const BTF_KIND_ENUM = 6;
const BTF_KIND_ENUM64 = 19;
/** struct btf_type: name_off, info, size/type (u32 each); members follow. */
const BTF_TYPE_SIZE = 12;

/**
 * Values and names of a C enum in a BTF file (default: the running kernel's), read
 * through libbpf. ENUM and ENUM64 both work; values above 2^53 are not expected.
 * @throws BpfError ENOENT when the enum is missing, or naming the libbpf call that failed.
 */
export function readBtfEnum(name: string, path = VMLINUX_BTF): Map<number, string> {
  const btf = libbpf().btf__parse(cString(path), null);
  if (isNull(btf)) throw new BpfError(`btf__parse(${path})`, lastErrno());
  try {
    let kind = BTF_KIND_ENUM;
    let id = libbpf().btf__find_by_name_kind(btf, cString(name), kind);
    if (id < 0) {
      kind = BTF_KIND_ENUM64;
      id = libbpf().btf__find_by_name_kind(btf, cString(name), kind);
    }
    if (id < 0) throw new BpfError(`btf__find_by_name_kind(enum ${name})`, ERRNO.ENOENT);
    const t = libbpf().btf__type_by_id(btf, id);
    if (isNull(t)) throw new BpfError(`btf__type_by_id(${id})`, ERRNO.ENOENT);
    return enumMembers(btf, t, kind);
  } finally {
    libbpf().btf__free(btf);
  }
}

function enumMembers(btf: Pointer, t: Pointer, kind: number): Map<number, string> {
  const vlen = read.u32(t, 4) & 0xffff;
  const signed = (read.u32(t, 4) & 0x80000000) !== 0;
  const out = new Map<number, string>();
  // btf_enum {name_off, val} is 8 bytes; btf_enum64 {name_off, val_lo32, val_hi32} is 12.
  const step = kind === BTF_KIND_ENUM ? 8 : 12;
  for (let i = 0; i < vlen; i++) {
    const off = BTF_TYPE_SIZE + i * step;
    const nameOff = read.u32(t, off);
    let value = signed ? read.i32(t, off + 4) : read.u32(t, off + 4);
    if (kind === BTF_KIND_ENUM64) value += read.u32(t, off + 8) * 2 ** 32;
    out.set(value, libbpf().btf__name_by_offset(btf, nameOff).toString());
  }
  return out;
}

/**
 * The running kernel's `enum skb_drop_reason`: value -> name without the
 * `SKB_DROP_REASON_` prefix (`3 -> "NO_SOCKET"`); `SKB_CONSUMED` and
 * `SKB_NOT_DROPPED_YET` keep their names minus `SKB_`. The `_MAX` and `_SUBSYS_MASK`
 * markers are left out. Values differ between kernel versions.
 */
export function kernelDropReasons(path = VMLINUX_BTF): Map<number, string> {
  const out = new Map<number, string>();
  for (const [value, name] of readBtfEnum("skb_drop_reason", path)) {
    const short = name.startsWith("SKB_DROP_REASON_")
      ? name.slice("SKB_DROP_REASON_".length)
      : name.replace(/^SKB_/, "");
    if (short === "MAX" || short === "SUBSYS_MASK") continue;
    out.set(value, short);
  }
  return out;
}
