#!/usr/bin/env bash
# The device half of a benchmark, run ON the device (a Raspberry Pi, an aarch64 board, an emulated
# arm64 userland): install edgelm's torch-free runtime from a wheel, check each bundle against its
# parity record, then time it. Called by pi.sh and aarch64.sh; usable by hand:
#
#   bash device_side.sh WORKDIR WHEEL BUNDLE [BUNDLE ...]
#
# Env: EDGELM_DEVICE names the device in the results (e.g. "Raspberry Pi 4 Model B");
#      BENCH_ARGS adds options to `edgelm bench` (default: 1 and 4 threads, 32/128 tokens, 30 runs);
#      DATA (a folder under WORKDIR, from `python -m edgelm.benchmarks.subset`) scores every bundle on it
#      with this device's kernels: scores.json (bundles x languages, for `edgelm metrics`) and
#      metrics.json (METRICS_ARGS, e.g. "--base bundles/teacher --target bundles/student=swh_Latn").
set -euo pipefail
work=$1; wheel=$2; shift 2
[ $# -ge 1 ] || { echo "usage: device_side.sh WORKDIR WHEEL BUNDLE [BUNDLE ...]" >&2; exit 2; }
cd "$work"
echo "== device: $(uname -m), $(grep -m1 -E 'model name|Model|Hardware' /proc/cpuinfo | cut -d: -f2- | xargs), Python $(python3 -V 2>&1)"
if [ ! -x venv/bin/edgelm ]; then
  python3 -m venv venv
  venv/bin/pip install -q --disable-pip-version-check "${wheel}[device]"
fi
venv/bin/python -c "import importlib.util as u; assert u.find_spec('torch') is None; print('== torch installed: no')"
for b in "$@"; do
  echo "== parity check + run: $b"
  venv/bin/python -c "import sys; from edgelm.runtime import Model; m = Model.load(sys.argv[1], check_parity=False)
r = m.check_parity(); print(f'parity ({m.backend.name}, {len(m.bundle.manifest[\"parity\"][\"texts\"])} sentences): '
      f'min cosine {r[\"min_cosine\"]:.5f} to the source model, threshold {m.bundle.manifest[\"parity\"][\"thresholds\"][\"min_cosine\"]}')" "$b"
  venv/bin/edgelm run "$b" "Serikali imetangaza bajeti mpya ya elimu." "The government announced a new education budget."
done
if [ -n "${DATA:-}" ]; then
  echo "== quality on this device's kernels: SIB-200 slice in $DATA"
  venv/bin/edgelm eval "$@" --domains languages --task sib200 --data "$DATA" --out scores.json
  # shellcheck disable=SC2086
  venv/bin/edgelm metrics scores.json ${METRICS_ARGS:-} --out metrics.json
fi
echo "== bench"
# shellcheck disable=SC2086
venv/bin/edgelm bench "$@" ${BENCH_ARGS:---threads 1 --seq-len 32,128 --runs 30} --out bench.json
