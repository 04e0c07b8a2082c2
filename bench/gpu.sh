#!/usr/bin/env bash
# Phase 1 on a CUDA GPU against the same machine's CPU (steps/s and the ratio); see bench/experiments/gpu.py.
# Needs a CUDA build of torch in the environment and the data folder (../shared/data or $EDGELM_DATA).
#   bench/gpu.sh [--steps 300] [--cpu-steps 60] [--out runs/bench-gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" -m edgelm.benchmarks.experiments.gpu "$@"
