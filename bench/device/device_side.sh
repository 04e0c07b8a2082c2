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
#      metrics.json (METRICS_ARGS, e.g. "--base bundles/teacher --target bundles/student=swh_Latn");
#      EVAL_ARGS adds options to that `edgelm eval` (e.g. "--threads 1" under emulation);
#      UNCHECKED=1 also scores each TFLite bundle on LiteRT's default (XNNPACK) kernels with the parity
#      check off (unchecked.json): how far a drift the parity check refuses moves accuracy.
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
  # Model.load replays the parity record; a TFLite bundle that fails it on XNNPACK is retried on LiteRT's other
  # kernel paths, and the first that passes runs it (named here, with the paths that failed).
  venv/bin/python -c "import sys, warnings; warnings.simplefilter('ignore'); from edgelm.runtime import Model; m = Model.load(sys.argv[1])
r = m.check_parity(); print(f'parity ({m.backend.name}, kernels {getattr(m.backend, \"kernels\", None) or \"-\"}, '
      f'{len(m.bundle.manifest[\"parity\"][\"texts\"])} sentences): min cosine {r[\"min_cosine\"]:.5f} to the source model, '
      f'threshold {m.bundle.manifest[\"parity\"][\"thresholds\"][\"min_cosine\"]}'
      + ''.join(f'; refused on {k}: {v.split(\": \", 1)[-1][:90]}' for k, v in m.kernel_fallback.items()))" "$b"
  venv/bin/edgelm run "$b" "Serikali imetangaza bajeti mpya ya elimu." "The government announced a new education budget."
done
if [ -n "${DATA:-}" ]; then
  echo "== quality on this device's kernels: SIB-200 slice in $DATA"
  # shellcheck disable=SC2086
  venv/bin/edgelm eval "$@" --domains languages --task sib200 --data "$DATA" --out scores.json ${EVAL_ARGS:-}
  if [ -n "${METRICS_ARGS:-}" ]; then
    # shellcheck disable=SC2086
    venv/bin/edgelm metrics scores.json ${METRICS_ARGS} --out metrics.json
  fi
fi
if [ -n "${DATA:-}" ] && [ "${UNCHECKED:-0}" = 1 ]; then
  echo "== SIB-200 slice on the XNNPACK kernels, parity check OFF (diagnosis only; edgelm never runs this way)"
  venv/bin/python - "$DATA" "$@" <<'PY'
import json, sys
from pathlib import Path
from edgelm.evaluation.sib200 import evaluate_sib200
from edgelm.runtime import Model
data = Path(sys.argv[1])
langs = sorted(p.name for p in (data / "sib200").iterdir() if p.is_dir())
out = {}
for b in sys.argv[2:]:
    m = Model.load(b, backend="litert:xnnpack", check_parity=False, threads=1)
    try:
        m.check_parity()
        cos = "passes"
    except Exception as exc:
        cos = str(exc)
    r = evaluate_sib200(m, data, langs)
    out[b] = {"parity": cos, "accuracy": {s["language"]: s["accuracy"] for s in r["scores"]}}
    print(b, json.dumps(out[b]), flush=True)
Path("unchecked.json").write_text(json.dumps(out, indent=1))
PY
fi
echo "== bench"
# shellcheck disable=SC2086
venv/bin/edgelm bench "$@" ${BENCH_ARGS:---threads 1 --seq-len 32,128 --runs 30} --out bench.json
