#!/usr/bin/env bash
# Benchmark bundles on a Raspberry Pi (Raspberry Pi OS bookworm, 64-bit, Python 3.11) over ssh.
#
#   PI=pi@raspberrypi.local bash bench/device/pi.sh runs/bench-export/bundles/student-tflite-int8 [BUNDLE ...]
#
# What it does: builds edgelm's wheel here (pure Python), copies it, the bundles and device_side.sh
# to ~/edgelm-bench on the Pi, installs `edgelm[device]` there (ai-edge-litert, onnxruntime,
# tokenizers, numpy: aarch64 wheels exist for all; no torch), checks each bundle's parity record on
# the Pi's own kernels, runs `edgelm bench` with EDGELM_DEVICE set, and copies bench.json back to
# runs/pi/. Threads: BENCH_ARGS="--threads 4 --seq-len 32,128" for all four A72 cores.
set -euo pipefail
: "${PI:?set PI=user@host of the Raspberry Pi}"
[ $# -ge 1 ] || { echo "usage: PI=user@host bash bench/device/pi.sh BUNDLE [BUNDLE ...]" >&2; exit 2; }
cd "$(dirname "$0")/../.."
for b in "$@"; do [ -f "$b/manifest.json" ] || { echo "error: $b is not an edgelm bundle" >&2; exit 2; }; done
python3 -m pip wheel -q --no-deps . -w dist/
wheel=$(ls -t dist/edgelm-*.whl | head -1)
ssh "$PI" mkdir -p edgelm-bench/bundles
scp -q "$wheel" bench/device/device_side.sh "$PI":edgelm-bench/
names=()
for b in "$@"; do scp -qr "$b" "$PI":edgelm-bench/bundles/; names+=("bundles/$(basename "$b")"); done
ssh "$PI" "cd edgelm-bench && EDGELM_DEVICE='${EDGELM_DEVICE:-Raspberry Pi 4 Model B}' BENCH_ARGS='${BENCH_ARGS:-}' \
  bash device_side.sh . ./$(basename "$wheel") ${names[*]}"
mkdir -p runs/pi && scp -q "$PI":edgelm-bench/bench.json runs/pi/bench.json && echo "results: runs/pi/bench.json"
