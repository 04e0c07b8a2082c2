"""`edgelm metrics`: DSI / GG / CDTR / ρ from a score matrix (models × domains)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, out, table
from edgelm.errors import EdgelmError


def _pairs(items: list[str], what: str, sep: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        left, found, right = item.partition(sep)
        if not found or not left.strip() or not right.strip():
            raise EdgelmError(f"{what} takes A{sep}B, not {item!r}")
        pairs.append((left.strip(), right.strip()))
    return pairs


def metrics_command(
    matrix: Annotated[Path, typer.Argument(help="Score matrix: .json (may name base, targets, intensity) or .tsv/.csv "
                                                "(header: model, domains…; an empty cell is missing).")],
    base: Annotated[Optional[str], typer.Option(help="The generalist base model (row name).")] = None,
    target: Annotated[Optional[list[str]], typer.Option(help="MODEL=DOMAIN: a specialist and its domain (repeat).")] = None,
    intensity: Annotated[Optional[list[str]], typer.Option(help="MODEL=NUMBER: compression intensity, e.g. bits per "
                                                                "weight or layers kept (repeat).")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="METHOD:REFERENCE: forgetting reduction of METHOD "
                                                              "against REFERENCE (repeat).")] = None,
    general: Annotated[Optional[str], typer.Option(help="Comma-separated general domains for GG (default: all but "
                                                        "the model's target).")] = None,
    dsi_form: Annotated[str, typer.Option("--dsi", help="ratio (default) | bounded.")] = "ratio",
    gg_form: Annotated[str, typer.Option("--gg", help="rel (default) | abs.")] = "rel",
    cdtr_form: Annotated[str, typer.Option("--cdtr", help="gain (default) | simple.")] = "gain",
    epsilon: Annotated[float, typer.Option(help="Gains at or below this are 'no gain' (NaN, not a huge ratio).")] = 1e-3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (NaN as null).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON report here.")] = None,
) -> None:
    """The cost of specialising: DSI, GG, forgetting reduction, CDTR and ρ (edgelm's definitions of GEM's metrics)."""
    from edgelm.api import metrics

    report = metrics(matrix, base=base, targets=dict(_pairs(target or [], "--target", "=")),
                     intensity=dict(_pairs(intensity or [], "--intensity", "=")),
                     compare=_pairs(compare or [], "--compare", ":"), general=general, dsi=dsi_form, gg=gg_form,
                     cdtr=cdtr_form, epsilon=epsilon)

    def render(r: dict) -> None:
        f = r["forms"]
        raw = r["raw"]
        out.print(table("scores (raw)", ["model", *raw["domains"]],
                        [[mod, *["–" if v is None else v for v in row]] for mod, row in zip(raw["models"], raw["scores"])]))
        rows = [[mod, v["domain"], v[f["dsi"]], r["gg"].get(mod, {}).get(f["gg"], math.nan)] for mod, v in r["dsi"].items()]
        rows += [[mod, "–", "–", v[f["gg"]]] for mod, v in r["gg"].items() if mod not in r["dsi"]]
        out.print(table(f"specialisation (DSI {f['dsi']}, GG {f['gg']}; base {raw['base']})",
                        ["model", "target", "DSI", "GG"], rows))
        for fr in r["forgetting_reduction"]:
            out.print(f"forgetting reduction {fr['method']} vs {fr['reference']}: {fr['value']:.3f}")
        c = r["cdtr"]
        if c["domains"]:
            out.print(table(f"CDTR ({c['form']}), row → column; off-diagonal mean {c['off_diagonal_mean']:.3f}",
                            ["from \\ to", *c["domains"]], [[d, *row] for d, row in zip(c["domains"], c["matrix"])]))
        for k, v in r["spearman"].items():
            if v["n"]:
                out.print(f"Spearman ρ {k.replace('_', ' ')}: {v['rho']:.3f} (n={v['n']})")
        for u in r["undefined"]:
            out.print(f"undefined: {u['metric']} {u['where']}: {u['reason']}")

    emit(report, as_json=as_json, json_out=json_out, render=render)
