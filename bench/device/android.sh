#!/usr/bin/env bash
# Benchmark a TFLite bundle on an Android phone with LiteRT's `benchmark_model` tool over adb.
#
#   BENCHMARK_MODEL=/path/to/android_aarch64_benchmark_model \
#     bash bench/device/android.sh runs/bench-export/bundles/student-tflite-int8 [THREADS]
#
# benchmark_model is LiteRT's prebuilt native benchmark binary (from a LiteRT / TensorFlow Lite
# release for android_aarch64; it is not on PyPI, so it is not fetched here). The phone needs USB
# debugging on. Each bucket signature (seq32, seq64, seq128) is timed with token ids drawn from
# the bundle's vocabulary and a full attention mask; the tool reports the model's init time, its
# average and percentile latency, and its memory. The bundle's sha256 is checked before pushing.
# Timings land in runs/android/<bundle>-<signature>.txt.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: BENCHMARK_MODEL=... bash bench/device/android.sh BUNDLE [THREADS]" >&2; exit 2; }
bundle=$1; threads=${2:-4}
command -v adb >/dev/null || { echo "error: adb not found (Android platform-tools)" >&2; exit 2; }
: "${BENCHMARK_MODEL:?set BENCHMARK_MODEL to LiteRT's android_aarch64 benchmark_model binary}"
[ -f "$bundle/model.tflite" ] || { echo "error: $bundle is not a TFLite bundle (no model.tflite)" >&2; exit 2; }
cd "$(dirname "$0")/../.."
python3 - "$bundle" <<'PY'
import sys
from edgelm.runtime.bundle import Bundle
Bundle.open(sys.argv[1])  # refuses a tampered or truncated file before it reaches the phone
PY
vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]+'/config.json'))['architecture']['vocab'])" "$bundle")
adb push -q "$BENCHMARK_MODEL" /data/local/tmp/benchmark_model
adb shell chmod +x /data/local/tmp/benchmark_model
adb push -q "$bundle/model.tflite" /data/local/tmp/edgelm.tflite
mkdir -p runs/android
device=$(adb shell getprop ro.product.model | tr -d '\r')
for sig in $(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]+'/config.json'))['signatures'].values()))" "$bundle"); do
  out="runs/android/$(basename "$bundle")-$sig.txt"
  echo "device: $device, signature $sig, $threads threads" | tee "$out"
  adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/edgelm.tflite --signature_to_run_for="$sig" \
    --num_threads="$threads" --use_xnnpack=true --num_runs=50 --warmup_runs=5 --report_peak_memory_footprint=true \
    --input_layer_value_range="args_0,5,$((vocab - 1)):args_1,1,1" | tee -a "$out"
done
