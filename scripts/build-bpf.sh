#!/usr/bin/env bash
# Builds every bpf/*.bpf.c into bpf/build/<name>.bpf.o (CO-RE, BTF included).
# Generates bpf/build/vmlinux.h from the running kernel's BTF when missing.
# Idempotent; works from any directory; exits non-zero on the first failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src_dir="$root/bpf"
out_dir="$root/bpf/build"
clang_bin="${CLANG:-}"
if [[ -z "$clang_bin" ]]; then
  if command -v clang-14 >/dev/null 2>&1; then clang_bin=clang-14; else clang_bin=clang; fi
fi

die() { echo "build-bpf: $*" >&2; exit 1; }

command -v "$clang_bin" >/dev/null 2>&1 || die "clang not found (looked for $clang_bin)"
[[ -f /usr/include/bpf/bpf_helpers.h ]] || die "libbpf headers missing (/usr/include/bpf); install libbpf-dev"

mkdir -p "$out_dir"

vmlinux_h="$out_dir/vmlinux.h"
if [[ ! -s "$vmlinux_h" ]]; then
  command -v bpftool >/dev/null 2>&1 || die "bpftool not found"
  [[ -r /sys/kernel/btf/vmlinux ]] || die "kernel BTF missing (/sys/kernel/btf/vmlinux)"
  tmp="$vmlinux_h.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$tmp" || die "bpftool btf dump failed"
  mv "$tmp" "$vmlinux_h"
  trap - EXIT
  echo "build-bpf: generated $vmlinux_h"
fi

shopt -s nullglob
sources=("$src_dir"/*.bpf.c)
[[ ${#sources[@]} -gt 0 ]] || die "no bpf/*.bpf.c sources found"

for src in "${sources[@]}"; do
  name="$(basename "$src" .c)"
  obj="$out_dir/$name.o"
  tmp_obj="$obj.tmp.$$"
  "$clang_bin" -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 \
    -I "$src_dir/include" -I "$out_dir" \
    -c "$src" -o "$tmp_obj" || { rm -f "$tmp_obj"; die "compiling $src failed"; }
  mv "$tmp_obj" "$obj"
  echo "build-bpf: built ${obj#"$root"/}"
done
