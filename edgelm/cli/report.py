"""`edgelm report`: the benchmarks' results files drawn as PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgelm.cli.output import out


def report_command(
    results: Annotated[list[Path], typer.Argument(help="Results files of the benchmarks (bench/results/*.json, or a "
                                                       "run's results.json).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("bench/plots"),
) -> None:
    """Draw what the benchmarks measured: quality vs size and latency (Pareto front, peers included), per-language
    accuracy, the compression sweep's ρ, quality vs training text, the server's latency under load."""
    from edgelm.benchmarks.plots import report

    for path in report(results, out_dir):
        out.print(str(path))
