"""`edgelm route`: SCAR over distilled experts — train one, and see what it routes where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, err, out, table

app = typer.Typer(help="SCAR: a sparse cross-attention router over distilled experts — whole specialists (build) or "
                       "top layers over a shared body (train).",
                  no_args_is_help=True)


@app.command("train")
def train_command(
    student: Annotated[Path, typer.Option(help="A multi-target `edgelm distill` run (e.g. --target swh_Latn,hin_Deva,amh_Ethi).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the routed model.")],
    domains: Annotated[str, typer.Option(help="Comma-separated domains, one expert each: languages the student was distilled on, "
                                              "or `topics` (SIB-200's seven; `topics:travel,health` for some).")],
    source: Annotated[str, typer.Option(help="Source language: trains with every expert, routes to the general expert.")] = "eng_Latn",
    expert_layers: Annotated[int, typer.Option(help="Top student layers that become the experts.")] = 1,
    general: Annotated[Optional[bool], typer.Option("--general/--no-general", help="Keep the student's own top layers as a general "
                                                    "expert (default: yes for languages; for topics only with --always-general).")] = None,
    always_general: Annotated[bool, typer.Option(help="Run the general expert for every input, routed experts on top.")] = False,
    general_languages: Annotated[str, typer.Option(help="Comma-separated languages whose text (SIB-200 train/dev, --corpus) "
                                                        "teaches the router to send other languages to the general expert.")] = "",
    steps: Annotated[int, typer.Option(help="Distillation steps per expert.")] = 600,
    router_steps: Annotated[int, typer.Option(help="Router training steps.")] = 600,
    balance: Annotated[float, typer.Option(help="Weight of the load-balancing term.")] = 0.01,
    tau: Annotated[float, typer.Option(help="Routing threshold: run the fewest experts whose weight reaches it, in (0, 1].")] = 0.9,
    k_max: Annotated[int, typer.Option(help="At most this many routed experts per input.")] = 2,
    lr: Annotated[float, typer.Option(help="Expert learning rate.")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 16,
    corpus: Annotated[list[str], typer.Option(help="Extra domain text, DOMAIN=PATH (.txt/.txt.gz or folder); repeatable.")] = [],  # noqa: B006
    no_bundled: Annotated[bool, typer.Option("--no-bundled", help="Do not use SIB-200 train/dev text.")] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps (auto: CUDA, then MPS, then the CPU).")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16 (autocast; fp16 on a GPU only).")] = "fp32",
    threads: Annotated[Optional[int], typer.Option(help="torch threads.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Data folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print routed.json.")] = False,
) -> None:
    """Split a multi-target student into body + experts, distil each expert on its domain, train the router."""
    from edgelm.api import route
    from edgelm.cli.distill import parse_corpora

    meta = route(student, domains, out=out_dir, source=source, general=general, general_languages=general_languages,
                 corpus=parse_corpora(corpus), data=data, use_bundled=not no_bundled, overwrite=overwrite,
                 threads=threads, expert_layers=expert_layers, always_general=always_general, steps=steps,
                 router_steps=router_steps, balance=balance, tau=tau, k_max=k_max, lr=lr, batch_size=batch_size,
                 seed=seed, device=device, precision=precision)

    def render(m: dict) -> None:
        r = m["training"]["router"]
        rows = [[name, m["training"]["experts"][name].get("steps", 0), m["training"]["experts"][name].get("last_loss", ""),
                 r["heldout_accuracy_per_expert"].get(name, "")] for name in m["experts"]]
        out.print(table(f"routed model in {out_dir}: body {m['body_layers']} layers, experts {m['expert_layers']} layer(s)",
                        ["expert", "steps", "final loss", "router held-out acc"], rows))
        out.print(f"router: held-out accuracy {r['heldout_accuracy']:.3f} on {r['heldout_sentences']} sentences, "
                  f"{r['heldout_mean_experts']:.2f} experts per sentence at tau {m['tau']}, k_max {m['k_max']}")
        err.print(f"done in {m['wall_seconds']} s")

    emit(meta, as_json=as_json, json_out=None, render=render)


@app.command("build")
def build_command(
    expert: Annotated[list[str], typer.Option(help="LANGUAGE=FOLDER: a model that masters LANGUAGE (a bilingual "
                                                   "`edgelm distill` student: its general/ or task/ folder); repeatable.")],
    general: Annotated[Optional[Path], typer.Option(help="The general expert, for every other language: a multi-target "
                                                         "student, or the teacher's folder.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the routed model.")] = Path("routed"),
    heldout: Annotated[Optional[str], typer.Option(help="Comma-separated SIB-200 languages kept out of router training "
                                                        "(default ind_Latn,tur_Latn,vie_Latn,jpn_Jpan; '' for none).")] = None,
    tau: Annotated[float, typer.Option(help="Routing threshold: run the fewest experts whose weight reaches it, in (0, 1].")] = 0.9,
    k_max: Annotated[int, typer.Option(help="At most this many experts per input.")] = 1,
    router_steps: Annotated[int, typer.Option(help="Router training steps.")] = 1500,
    corpus: Annotated[list[str], typer.Option(help="More router text, LANGUAGE=PATH (.txt/.txt.gz or folder); "
                                                   "repeatable. An expert's language trains its expert; any other "
                                                   "language teaches what goes to the general expert.")] = [],  # noqa: B006
    corpus_lines: Annotated[Optional[int], typer.Option(help="Lines of each --corpus language the router reads "
                                                             "(default 2000).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    data: Annotated[Optional[Path], typer.Option(help="Data folder (SIB-200 text trains the router).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print routed.json.")] = False,
) -> None:
    """Route over whole specialists (each its own vocabulary and tokenizer) and a general expert, with a SCAR
    router on character n-grams that runs before any of them."""
    from edgelm.api import build_routed
    from edgelm.cli.distill import parse_corpora
    from edgelm.errors import EdgelmError

    pairs = {}
    for spec in expert:
        lang, sep, folder = spec.partition("=")
        if not sep or not lang.strip() or not folder.strip():
            raise EdgelmError(f"--expert takes LANGUAGE=FOLDER, not {spec!r}")
        if lang.strip() in pairs:
            raise EdgelmError(f"two experts claim {lang.strip()}: {pairs[lang.strip()]} and {folder}")
        pairs[lang.strip()] = folder
    meta = build_routed(pairs, general=general, out=out_dir, data=data, tau=tau, k_max=k_max,
                        heldout=heldout, router_steps=router_steps, corpus=parse_corpora(corpus),
                        corpus_lines=corpus_lines, seed=seed, overwrite=overwrite)

    def render(m: dict) -> None:
        test = m["router"]["test"]
        rows = [[lang, "held out" if lang in m["router"]["heldout"] else "trained",
                 next((n for n in m["experts"] if n == lang), "general"), f"{r['right']:.3f}", r["mean_experts"]]
                for lang, r in test.items()]
        out.print(table(f"routed specialists in {out_dir}: {', '.join(m['experts'])}",
                        ["SIB-200 test language", "router", "its expert", "routed there", "experts/sentence"], rows))
        err.print(f"done in {m['wall_seconds']} s")

    emit(meta, as_json=as_json, json_out=None, render=render)


@app.command("show")
def show_command(
    model: Annotated[str, typer.Argument(help="A routed model folder or a routed bundle.")],
    texts: Annotated[list[str], typer.Argument(help="Sentences to route.")],
    tau: Annotated[Optional[float], typer.Option(help="Override the model's tau.")] = None,
    k_max: Annotated[Optional[int], typer.Option(help="Override the model's k_max.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Which experts each sentence runs, with the router's weights."""
    from edgelm.api import show_routes

    result = show_routes(model, texts, tau=tau, k_max=k_max)

    def render(r: dict) -> None:
        rows = [[x["text"][:60], ", ".join(x["chosen"]), *(x["weights"][n] for n in r["experts"])] for x in r["routes"]]
        out.print(table(f"routing ({r['mean_experts']:.2f} experts per sentence)", ["text", "runs", *r["experts"]], rows))

    emit(result, as_json=as_json, json_out=None, render=render)
