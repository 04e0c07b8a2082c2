#!/usr/bin/env bash
# aarch64 proof from an x86 machine: an arm64 Debian bookworm userland (Raspberry Pi OS bookworm's
# base, Python 3.11) built with debootstrap, run through qemu-user-static, where edgelm's device
# runtime is installed with pip and a bundle's parity check and a short bench run.
#
#   sudo bash bench/device/aarch64.sh runs/bench-export/bundles/student-tflite-int8 [BUNDLE ...]
#   sudo SCORE=1 METRICS_ARGS="--base bundles/teacher-tflite-int8 --target bundles/student-tflite-int8=swh_Latn" \
#       QEMU_CPU=max bash bench/device/aarch64.sh BUNDLE ...   # + SIB-200 scores on the emulated CPU's kernels
#
# Needs root (apt-get, debootstrap, chroot, mounts) and the Debian mirror + PyPI. First run ~5 min
# (debootstrap ~2.5 min, pip ~1 min); the userland is kept in $ARM64_ROOT for the next run.
# UNDER EMULATION qemu is 100x+ slower than a device: the timings printed here show that the
# runtime installs and computes the same on arm64 (the parity check runs the arm64 kernels), never
# how fast a device is. Log: runs/aarch64/log.txt, bench JSON: runs/aarch64/bench.json.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: sudo bash bench/device/aarch64.sh BUNDLE [BUNDLE ...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "error: needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }
cd "$(dirname "$0")/../.."
for b in "$@"; do [ -f "$b/manifest.json" ] || { echo "error: $b is not an edgelm bundle" >&2; exit 2; }; done
ROOT=${ARM64_ROOT:-/var/tmp/edgelm-arm64}
# The Debian mirror this machine's apt already uses (DEBIAN_MIRROR overrides).
MIRROR=${DEBIAN_MIRROR:-$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } \
  | grep -oE '^(deb|URIs:) +https?://[^ ]+/debian/?( |$)' | grep -oE 'https?://[^ ]+' | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p runs/aarch64
exec > >(tee runs/aarch64/log.txt) 2>&1
echo "== host: $(uname -m), $(date -u +%FT%TZ), mirror $MIRROR"

if ! command -v debootstrap >/dev/null || [ ! -e /usr/bin/qemu-aarch64-static ]; then
  apt-get update -qq && apt-get install -y -qq qemu-user-static debootstrap >/dev/null
fi
# binfmt_misc: mount it if the sandbox has not, then register the aarch64 handler once.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | grep . > /proc/sys/fs/binfmt_misc/register
fi
if [ ! -e "$ROOT/.edgelm-ready" ]; then
  echo "== debootstrap arm64 bookworm into $ROOT"
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >/dev/null
  touch "$ROOT/.edgelm-ready"
fi
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"  # pip's TLS (see research/arm64.md)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
# Not the host's /sys: its x86 CPU topology crashes XNNPACK's cpuinfo under qemu (segfault when the
# interpreter starts). A Pi 4's four cores, as cpuinfo reads them, are all it needs.
mountpoint -q "$ROOT/sys" && umount -l "$ROOT/sys"
mkdir -p "$ROOT/sys/devices/system/cpu"
echo 0-3 > "$ROOT/sys/devices/system/cpu/possible"
echo 0-3 > "$ROOT/sys/devices/system/cpu/present"
echo "== chroot: $(chroot "$ROOT" uname -m), $(chroot "$ROOT" python3 -V)"

rm -rf dist/edgelm-*.whl
python3 -m pip wheel -q --no-deps . -w dist/ 2>/dev/null || "${PYTHON:-.venv/bin/python}" -m pip wheel -q --no-deps . -w dist/
wheel=$(ls dist/edgelm-*.whl | head -1)
work="$ROOT/opt/edgelm"
mkdir -p "$work/bundles"
cp "$wheel" bench/device/device_side.sh "$work/"
names=()
for b in "$@"; do rm -rf "$work/bundles/$(basename "$b")"; cp -r "$b" "$work/bundles/"; names+=("bundles/$(basename "$b")"); done
# SCORE=1: also score the bundles on a SIB-200 slice with the emulated CPU's kernels (scores.json and
# metrics.json; METRICS_ARGS names the base and targets, e.g. "--base bundles/T --target bundles/S=swh_Latn").
data_env=()
rm -f "$work/scores.json" "$work/metrics.json" "$work/unchecked.json"
if [ "${SCORE:-0}" = 1 ]; then
  rm -rf "$work/data"
  "${PYTHON:-.venv/bin/python}" -m edgelm.benchmarks.subset "$work/data" ${SUBSET_ARGS:-} >/dev/null
  # One interpreter thread: qemu runs each guest thread on the host's cores, and the default (4, as the
  # emulated /sys says) makes them fight over two.
  data_env=(DATA=/opt/edgelm/data "METRICS_ARGS=${METRICS_ARGS:-}" "EVAL_ARGS=${EVAL_ARGS:---threads 1}"
            "UNCHECKED=${UNCHECKED:-0}")
fi
# The Pi 4's core (ARMv8.0-A: no dotprod, no i8mm, no SVE). qemu's default "max" CPU advertises all of
# those; there LiteRT's dynamic-int8 kernels gave min cosine 0.772 against the source model (refused by
# the parity check) while the same bundle on an emulated Cortex-A72 gives 0.9997. QEMU_CPU=max repeats it.
cpu=${QEMU_CPU:-cortex-a72}
echo "== emulated CPU: $cpu"
chroot "$ROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU="$cpu" \
  EDGELM_DEVICE="arm64 Debian bookworm, qemu-user $cpu (emulated: not device timings)" \
  BENCH_ARGS="${BENCH_ARGS:---threads 1 --seq-len 32 --runs 5 --warmup 1}" \
  "${data_env[@]}" \
  bash /opt/edgelm/device_side.sh /opt/edgelm "./$(basename "$wheel")" "${names[@]}"
cp "$work/bench.json" runs/aarch64/bench.json
if [ "${SCORE:-0}" = 1 ]; then
  for f in scores.json metrics.json unchecked.json; do
    if [ -f "$work/$f" ]; then cp "$work/$f" "runs/aarch64/$cpu-$f"; fi
  done
fi
"${PYTHON:-.venv/bin/python}" bench/device/collect.py "$cpu"  # -> bench/results/aarch64-$cpu.json
echo "== done: runs/aarch64/log.txt, runs/aarch64/bench.json"
