"""Results go to stdout (a table, or JSON with --json); progress and messages go to stderr."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgelm.atomic import atomic_write_text

import sys

# Tables for files and pipes get room for their columns; a terminal keeps its own width.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


def _clean(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_json(result: dict) -> str:
    return json.dumps(_clean(result), indent=2, ensure_ascii=False, default=str)


def emit(result: dict, *, as_json: bool, json_out: Path | None, render) -> None:
    """Print `result` as JSON or through `render(result)`; also save JSON to `json_out` if given."""
    text = to_json(result)
    if json_out is not None:
        atomic_write_text(json_out, text + "\n")
        err.print(f"wrote {json_out}")
    if as_json:
        print(text)
    else:
        render(result)


def table(title: str, columns: list[str], rows: list[list]) -> Table:
    """A rich table; floats are shown with three decimals."""
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    return t
