#!/usr/bin/env bash
# Proves the README's two commands on a minimal machine: a Debian 12 root made by
# `debootstrap --variant=minbase` plus only what a new user brings (nodejs npm git
# python3 make g++ curl ca-certificates). Into a fresh copy of that root it clones
# this repository's committed HEAD, then, chrooted, as root:
#   1. ./scripts/setup.sh, then ./scripts/test.sh (PERISCOPE_TEST_IN_MINIMAL_ROOT=1,
#      which leaves out this check and the Docker engine test) — must pass;
#   2. ./scripts/up.sh until it streams demo flows (TCP, UDP and ICMP between the demo
#      pods, with a verdict), then SIGINT to its process group, and checks it exits 0
#      and leaves no psc- namespace or device, BPF program, pin or process behind.
# Everything runs in a private mount namespace and a new PID namespace, with the root
# unpacked into a tmpfs there, so every mount, every process and the root itself end
# with the check, also on failure (PERISCOPE_KEEP_MINIMAL_ROOT=1 unpacks it on disk
# and keeps it). Logs of the last run stay in $PERISCOPE_CACHE_DIR/minimal-root-last.
#
# Roots are cached in $PERISCOPE_CACHE_DIR (default /var/cache/periscope): the minbase
# tarball (scripts/lib/debian-root.sh) and one with the new-user packages, keyed by the
# package list and the minbase tarball. Run by scripts/test.sh; alone: as root,
#   bash scripts/check-minimal-root.sh
set -euo pipefail

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
CACHE_DIR="${PERISCOPE_CACHE_DIR:-/var/cache/periscope}"
# What a new user has installed before following the README.
USER_PACKAGES=(nodejs npm git python3 make g++ curl ca-certificates)
# Name prefix of the demo topology's namespaces and devices (scripts/up.ts).
DEMO_PREFIX="psc-"
# BPF program names the collector loads (bpf/*.bpf.c).
OUR_PROGRAMS_RE='name (trace_ingress|trace_egress|capture_ingress|capture_egress|drop_kfree_skb) '
# A compact flow line between demo endpoints (pod names or 10.200.0.x) with a verdict.
FLOW_RE='(demo/[a-z]+|10\.200\.0\.[0-9]+)(:[0-9]+)? \S+ (->|<-|<>) (demo/[a-z]+|10\.200\.0\.[0-9]+)(:[0-9]+)? \S+ \S+ (FORWARDED|DROPPED) '
CHECKOUT=/root/periscope

log() { echo "minimal-root: $*"; }
die() {
  echo "minimal-root: $*" >&2
  exit 1
}
now() { echo "$EPOCHREALTIME"; }
# Seconds since $1, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# Appends "phase<TAB>seconds<TAB>note" to the report file.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$REPORT"; }

# ---------------------------------------------------------------------------------
# Inside the namespaces (PID 1 of a new PID namespace, private mount namespace).

# Mounts what a booted machine has into $ROOT: the root bind-mounted onto itself
# (`ip netns exec` remounts / as slave), proc of this PID namespace, sysfs, cgroups, /dev, bpffs.
mount_root() {
  mount --bind "$ROOT" "$ROOT"
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sysfs "$ROOT/sys"
  mount --rbind /sys/fs/cgroup "$ROOT/sys/fs/cgroup" # the cgroup hierarchies (v2 for the process sensor)
  mount --rbind /dev "$ROOT/dev"
  mount -t bpf bpf "$ROOT/sys/fs/bpf"
  cp -fL /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp -f /etc/hosts "$ROOT/etc/hosts"
}

# The clean environment of a root login in $ROOT, plus this host's proxy settings.
root_env() {
  ROOT_ENV=(HOME=/root LANG=C.UTF-8 TERM=dumb
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    PERISCOPE_TEST_IN_MINIMAL_ROOT=1)
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [[ -n "${!v:-}" ]]; then ROOT_ENV+=("$v=${!v}"); fi
  done
}

# Runs a command chrooted into $ROOT with that environment.
in_root() { chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" "$@"; }

# Prefixes each line so the inner run stands apart in the outer log; drops bun's
# "(pass) <name>" lines (the full output is kept, see LAST_LOGS).
indent() { grep --line-buffered -v '^(pass) ' | sed -u 's/^/  │ /'; }

# Runs a command with its output kept in a log file and shown indented; its exit
# status goes to STATUS.
run_logged() {
  STATUS=0
  "${@:2}" 2>&1 | tee "$1" | indent || STATUS=${PIPESTATUS[0]}
}

# Installs the new-user packages into $ROOT.
inside_build_user_root() {
  in_root apt-get update -q >"$ROOT/tmp/apt.log" 2>&1 &&
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${USER_PACKAGES[@]}" >>"$ROOT/tmp/apt.log" 2>&1 || {
    tail -40 "$ROOT/tmp/apt.log" >&2
    die "installing ${USER_PACKAGES[*]} into the root failed"
  }
  in_root apt-get clean
  rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/tmp/apt.log"
}

# Processes in this PID namespace other than this shell (PID 1) and the subshell this
# runs in, as "pid: cmdline".
other_processes() {
  local p args
  for p in "$ROOT"/proc/[0-9]*; do
    p="${p##*/}"
    [[ "$p" == 1 || "$p" == "$BASHPID" ]] && continue
    args=()
    mapfile -d '' args <"$ROOT/proc/$p/cmdline" 2>/dev/null || continue
    ((${#args[@]} > 0)) || continue # kernel thread or already gone
    echo "$p: ${args[*]}"
  done
}

# IDs of the BPF programs attached by tc in the demo pods' namespaces.
attached_program_ids() {
  local ns dir
  for ns in $(in_root ip netns list | awk -v p="$DEMO_PREFIX" 'index($1, p) == 1 { print $1 }'); do
    for dir in ingress egress; do
      { in_root ip netns exec "$ns" tc filter show dev eth0 "$dir" 2>/dev/null || true; } |
        { grep -Eo ' id [0-9]+' || true; } | awk '{ print $2 }'
    done
  done | sort -un
}

# The inner suite: setup.sh (must pass), then test.sh (recorded; SUITE_FAILED=1 on failure).
inside_suite() {
  local t status
  t="$(now)"
  run_logged "$WORK/inner-setup.log" in_root bash -c "cd $CHECKOUT && ./scripts/setup.sh"
  status=$STATUS
  record "inner setup.sh" "$(since "$t")"
  ((status == 0)) || die "scripts/setup.sh failed in the minimal root (exit $status)"

  t="$(now)"
  run_logged "$WORK/inner-test.log" in_root timeout 45m bash -c "cd $CHECKOUT && ./scripts/test.sh"
  status=$STATUS
  local summary
  summary="$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed$' "$WORK/inner-test.log" | tail -1 || true)"
  record "inner test.sh" "$(since "$t")" "${summary:-no summary line}, exit $status"
  if ((status != 0)); then
    # Go on with up.sh anyway, so that one run reports everything the root lacks.
    log "scripts/test.sh failed in the minimal root (exit $status)" >&2
    SUITE_FAILED=1
  fi
}

# up.sh until demo flows stream, then Ctrl-C and a search for anything left behind.
inside_up() {
  local out="$WORK/up.out" err="$WORK/up.err" t t_flows pid status=0 deadline problems=()
  local stray
  stray="$(other_processes)"
  [[ -z "$stray" ]] || die "processes left running by the inner suite:"$'\n'"$stray"
  t="$(now)"
  # setsid: up.sh gets a process group of its own, as a terminal's foreground job has;
  # setsid, chroot, env and bash all exec, so $! stays the group's leader.
  setsid chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" \
    bash -c "cd $CHECKOUT && exec ./scripts/up.sh" </dev/null >"$out" 2>"$err" &
  pid=$!

  # Streamed flows: TCP, UDP and ICMP between the demo endpoints.
  local seen
  deadline=$((SECONDS + 240))
  while :; do
    seen="$(grep -E "$FLOW_RE" "$out" || true)"
    if [[ "$seen" == *"TCP Flags"* && "$seen" == *"(UDP)"* && "$seen" == *"ICMPv4"* ]]; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
      echo "--- up.sh stdout (tail)" >&2
      tail -20 "$out" >&2
      echo "--- up.sh stderr (tail)" >&2
      tail -40 "$err" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
      die "up.sh did not stream TCP, UDP and ICMP flows of the demo pods within 240 s"
    fi
    sleep 0.5 || true
  done
  t_flows="$(since "$t")"
  local ids flows
  ids="$(attached_program_ids)"
  flows="$(grep -cE "$FLOW_RE" "$out" || true)"
  log "up.sh streamed $flows demo flow lines after ${t_flows}s, e.g.:"
  { grep -E "$FLOW_RE" "$out" || true; } | head -3 | indent
  [[ -n "$ids" ]] || problems+=("no tc filter with a BPF program on the demo pods' eth0 while up.sh ran")

  # Ctrl-C: SIGINT to up.sh's process group; it must stop everything and exit 0.
  local t_stop
  t_stop="$(now)"
  kill -INT -- "-$pid"
  deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS <= deadline)); do sleep 0.2 || true; done
  if kill -0 "$pid" 2>/dev/null; then
    problems+=("up.sh still running 60 s after SIGINT")
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" || status=$?
  ((status == 0)) || problems+=("up.sh exited with $status after SIGINT")
  record "up.sh run" "$(since "$t")" "flows after ${t_flows}s, stopped in $(since "$t_stop")s"

  # Anything left behind: namespaces, devices, programs, pins, processes.
  local leftover
  for leftover in $(in_root ip netns list | awk -v p="$DEMO_PREFIX" 'index($1, p) == 1 { print $1 }'); do
    problems+=("network namespace $leftover")
  done
  for leftover in $(in_root ip -o link show | awk -F': ' -v p="$DEMO_PREFIX" 'index($2, p) == 1 { print $2 }'); do
    problems+=("host network device $leftover")
  done
  local id prog
  for id in $ids; do
    prog="$(in_root bpftool prog show id "$id" 2>/dev/null || true)"
    if [[ "$prog" =~ $OUR_PROGRAMS_RE ]]; then
      problems+=("BPF program id $id (was attached to a demo pod)")
    fi
  done
  # maps.debug and progs.debug: the kernel's own iterators in every bpffs.
  leftover="$(find "$ROOT/sys/fs/bpf" -mindepth 1 ! -name maps.debug ! -name progs.debug)"
  [[ -z "$leftover" ]] || problems+=("pinned BPF objects: $leftover")
  while IFS= read -r leftover; do
    [[ -n "$leftover" ]] && problems+=("process $leftover")
  done < <(other_processes)

  if ((${#problems[@]} > 0)); then
    echo "--- up.sh stderr (tail)" >&2
    tail -30 "$err" >&2
    printf '  %s\n' "${problems[@]}" >&2
    die "up.sh (Ctrl-C) left problems behind"
  fi
  log "up.sh stopped on SIGINT with exit 0 and left nothing behind"
}

# Removes the demo and test namespaces made inside, so nothing outlives the check.
inside_cleanup() {
  local ns
  for ns in $(in_root ip netns list 2>/dev/null | awk '{ print $1 }'); do
    in_root ip netns delete "$ns" 2>/dev/null || true
  done
}

# inside <build-user|check> <root tarball> [<tarball to write>]: unpacks the root into
# a tmpfs at $ROOT (a directory on disk with PERISCOPE_KEEP_MINIMAL_ROOT=1), so that
# removing it is instant and happens with the namespace, then does the step.
inside() {
  local what="$1" tarball="$2" out="${3:-}" t
  set -E
  trap 'echo "minimal-root: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
  root_env
  t="$(now)"
  mkdir -p "$ROOT"
  if [[ "${PERISCOPE_KEEP_MINIMAL_ROOT:-}" != 1 ]]; then
    mount -t tmpfs -o size=16g,mode=0755 minimal-root "$ROOT"
  fi
  tar -C "$ROOT" -xf "$tarball"
  case "$what" in
  build-user)
    mount_root
    inside_build_user_root
    # --one-file-system: the root's own files, not the mounted proc, sys and dev.
    tar -C "$ROOT" --one-file-system -cf "$out" .
    ;;
  check)
    git clone -q "$REPO" "$ROOT$CHECKOUT"
    record "unpack root, clone $(git -C "$ROOT$CHECKOUT" rev-parse --short HEAD)" "$(since "$t")"
    mount_root
    trap inside_cleanup EXIT
    SUITE_FAILED=0
    inside_suite
    inside_up
    ((SUITE_FAILED == 0)) || exit 1
    ;;
  *) die "unknown inside step $what" ;;
  esac
}

if [[ "${1:-}" == "--inside" ]]; then
  ROOT="$3" WORK="$4" REPORT="$4/report"
  inside "$2" "$5" "${6:-}"
  exit 0
fi

# ---------------------------------------------------------------------------------
# Outside: cached roots, a fresh copy, the clone, the report.

[[ $EUID -eq 0 ]] || die "run as root (debootstrap, chroot, namespaces)"
if [[ "${PERISCOPE_TEST_IN_MINIMAL_ROOT:-}" == 1 ]]; then
  log "skipped: already inside the minimal root"
  exit 0
fi
for cmd in unshare chroot flock tar git; do
  command -v "$cmd" >/dev/null || die "$cmd is missing (scripts/setup.sh installs what this needs)"
done

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/minimal-root.lock"
if ! flock -n 9; then
  log "waiting for another minimal-root check on this machine"
  flock 9
fi

t_all="$(now)"
WORK="$(mktemp -d "$CACHE_DIR/minimal-root.XXXXXX")"
REPORT="$WORK/report"
ROOT="$WORK/root"
LAST_LOGS="$CACHE_DIR/minimal-root-last"
: >"$REPORT"

# Removes $WORK unless something is still mounted below it (never the case once the
# namespaces are gone: their mounts were never visible here). The root in it is
# normally an empty mount point; with PERISCOPE_KEEP_MINIMAL_ROOT=1 it is kept.
remove_work() {
  [[ -d "$WORK" ]] || return 0
  if [[ -n "$(findmnt -rn -o TARGET | awk -v w="$WORK" 'index($0, w) == 1')" ]]; then
    echo "minimal-root: mounts under $WORK remain; not removing it" >&2
    return 1
  fi
  rm -rf --one-file-system "$WORK"
}
remove_work_root() { rm -rf --one-file-system "$ROOT"; }
cleanup() {
  local rc=$?
  if [[ "${PERISCOPE_KEEP_MINIMAL_ROOT:-}" == 1 ]]; then
    echo "minimal-root: kept $WORK (root, inner logs)"
  else
    remove_work || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

# Runs `inside <what>` in a private mount namespace as PID 1 of a new PID namespace:
# its mounts and processes end with it, also when it fails or this script is killed.
# unshare ignores SIGINT and SIGTERM while it waits, so it runs in the background and
# is killed (SIGKILL, which --kill-child passes on to the namespace's PID 1) when this
# script is interrupted or terminated.
in_namespaces() {
  unshare --mount --propagation private --pid --fork --kill-child \
    bash "$SELF" --inside "$1" "$ROOT" "$WORK" "${@:2}" &
  NS_PID=$!
  local rc=0
  wait "$NS_PID" || rc=$?
  NS_PID=""
  return "$rc"
}
NS_PID=""
interrupted() {
  if [[ -n "$NS_PID" ]]; then kill -KILL "$NS_PID" 2>/dev/null || true; fi
  echo "minimal-root: interrupted" >&2
  exit 130
}
trap interrupted INT TERM

# 1. The minbase root.
base_tar="$CACHE_DIR/debian12-minbase.tar"
how="warm"
[[ -s "$base_tar" ]] || how="cold"
t="$(now)"
base_tar="$(PERISCOPE_CACHE_DIR="$CACHE_DIR" bash "$REPO/scripts/lib/debian-root.sh")"
record "minbase root ($how)" "$(since "$t")"

# 2. The minbase root plus the new-user packages, keyed by list and base.
key="$({
  printf '%s\n' "${USER_PACKAGES[@]}"
  stat -c '%s %Y' "$base_tar"
} | sha256sum | cut -c1-12)"
user_tar="$CACHE_DIR/debian12-minbase-user-$key.tar"
how="warm"
t="$(now)"
if [[ ! -s "$user_tar" ]]; then
  how="cold"
  in_namespaces build-user "$base_tar" "$user_tar.tmp"
  mv "$user_tar.tmp" "$user_tar"
  remove_work_root
  find "$CACHE_DIR" -maxdepth 1 -name 'debian12-minbase-user-*.tar' ! -name "${user_tar##*/}" -delete
fi
record "root + ${USER_PACKAGES[*]} ($how)" "$(since "$t")"

# 3. A fresh copy with this repository's committed HEAD cloned into it; setup.sh,
# test.sh and up.sh inside.
head="$(git -C "$REPO" rev-parse --short HEAD)"
[[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]] ||
  log "note: uncommitted changes in $REPO are not part of this check (it clones HEAD $head)"
log "running the README's commands in a minimal Debian 12 root at $ROOT (HEAD $head)"
set +e
in_namespaces check "$user_tar"
status=$?
set -e

# 5. Logs kept for a look afterwards, the root removed, the report.
rm -rf "$LAST_LOGS"
mkdir -p "$LAST_LOGS"
for f in inner-setup.log inner-test.log up.out up.err report; do
  if [[ -f "$WORK/$f" ]]; then cp "$WORK/$f" "$LAST_LOGS/"; fi
done

echo "minimal-root: left out by the inner suite (PERISCOPE_TEST_IN_MINIMAL_ROOT=1):"
if [[ -s "$LAST_LOGS/inner-test.log" ]]; then
  { grep -E '^(SKIP |\((skip|todo)\) )|check skipped' "$LAST_LOGS/inner-test.log" || echo "nothing"; } |
    sort -u | sed 's/^/  /'
fi
echo "minimal-root: phases"
while IFS=$'\t' read -r phase secs note; do
  printf '  %-62s %7ss  %s\n' "$phase" "$secs" "$note"
done <"$LAST_LOGS/report"
printf '  %-62s %7ss\n' "total" "$(since "$t_all")"
if ((status == 0)); then
  log "ok: setup.sh, test.sh and up.sh work on a minimal Debian 12 root (logs: $LAST_LOGS)"
else
  log "FAILED (exit $status); logs: $LAST_LOGS"
fi
exit "$status"
