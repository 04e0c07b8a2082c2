"""Progress bars (rich) with count, rate and ETA, on stderr so stdout stays machine-readable."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

_console = Console(stderr=True)


def progress_enabled() -> bool:
    """Bars show on an interactive terminal; EDGELM_PROGRESS=1/0 forces them on or off."""
    forced = os.environ.get("EDGELM_PROGRESS")
    if forced is not None:
        return forced not in ("0", "", "false")
    return sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "it",
                 enabled: bool | None = None) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, info="")`: a bar with count, rate, elapsed time and ETA when enabled."""
    if not (progress_enabled() if enabled is None else enabled):
        yield lambda n=1, info="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=_console) as bar:
        task = bar.add_task(description, total=total, rate="", info="")

        def advance(n: float = 1, info: str = "") -> None:
            bar.update(task, advance=n, info=info)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield advance


def notice(text: str) -> None:
    """A one-line note for the person running the job (stderr, like the bars): what was decided and why."""
    print(text, file=sys.stderr, flush=True)
