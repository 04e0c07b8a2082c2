"""edgelm.benchmarks: measuring models where they run.

The library: `harness` (behind `edgelm bench`: one record per target, runtime, threads, sequence length
and batch, interleaved, with the machine it ran on) and `estimate` (a Raspberry Pi 4 latency estimate
from FLOPs and weight bytes). `experiments/` holds the scripts behind the README's tables
(`python -m edgelm.benchmarks.experiments.NAME`); `device/` the shell scripts that run a bundle on a
Raspberry Pi, an Android phone or an emulated aarch64 userland.
"""
