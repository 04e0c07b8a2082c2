"""The experiments whose tables the README shows, each a script: `python -m edgelm.benchmarks.experiments.NAME`.

They drive edgelm through its public API (and the benchmark library one level up) and write their
results, resumable, under `runs/`.
"""
