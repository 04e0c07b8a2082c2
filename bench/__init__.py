"""edgelm.bench: benchmarks and their scripts.

What will live here: the latency / memory / size harness behind `edgelm bench` (one record per
bundle, runtime, threads and sequence length, with the machine it ran on), the distillation and
routing experiment scripts whose tables the README shows, and device scripts (Raspberry Pi, Android,
aarch64 under emulation).
"""
