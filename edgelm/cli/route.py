"""`edgelm route`: SCAR over distilled experts — train one, and see what it routes where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, err, out, table

app = typer.Typer(help="SCAR: a shared distilled body, per-domain experts and a sparse cross-attention router.",
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
    threads: Annotated[Optional[int], typer.Option(help="torch threads.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Data folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print routed.json.")] = False,
) -> None:
    """Split a multi-target student into body + experts, distil each expert on its domain, train the router."""
    from edgelm.cli.distill import _parse_corpora, corpus_data
    from edgelm.data.languages import normalize_language
    from edgelm.errors import EdgelmError
    from edgelm.route.train import RouteConfig, open_student, train_routed

    root, have = corpus_data(data, corpus)
    grouping = "topics" if domains.strip().split(":")[0] == "topics" else "languages"
    if grouping == "topics":
        from edgelm.data.sib200 import sib200_labels

        if root is None:
            raise EdgelmError("topic domains need the SIB-200 data: pass --data")
        chosen = domains.strip()[len("topics"):].lstrip(":")
        names = tuple(t.strip() for t in chosen.split(",") if t.strip()) if chosen else tuple(sib200_labels(root))
        if corpus:
            raise EdgelmError("topic domains train on SIB-200's labelled text; --corpus is for language domains")
    else:
        names = tuple(normalize_language(d.strip(), have) for d in domains.split(",") if d.strip())
    if general is None:
        general = grouping == "languages" or always_general
    cfg = RouteConfig(domains=names, source=normalize_language(source, have), grouping=grouping,
                      expert_layers=expert_layers, general=general, always_general=always_general,
                      general_languages=tuple(normalize_language(g.strip(), have) for g in general_languages.split(",") if g.strip()),
                      steps=steps, router_steps=router_steps,
                      balance=balance, tau=tau, k_max=k_max, lr=lr, batch_size=batch_size, seed=seed)
    cfg.check()
    open_student(student)
    corpora = {normalize_language(k, have): v for k, v in _parse_corpora(corpus).items()}
    unknown = [k for k in corpora if k not in names and k != cfg.source and k not in cfg.general_languages]
    if unknown:
        raise EdgelmError(f"--corpus names {unknown[0]}, which is neither a domain nor the source")
    if threads:
        import torch

        torch.set_num_threads(threads)
    meta = train_routed(cfg, student, out_dir, data_root=root, corpora_paths=corpora, overwrite=overwrite,
                        use_bundled=not no_bundled)

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


@app.command("show")
def show_command(
    model: Annotated[str, typer.Argument(help="A routed model folder or a routed bundle.")],
    texts: Annotated[list[str], typer.Argument(help="Sentences to route.")],
    tau: Annotated[Optional[float], typer.Option(help="Override the model's tau.")] = None,
    k_max: Annotated[Optional[int], typer.Option(help="Override the model's k_max.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Which experts each sentence runs, with the router's weights."""
    import numpy as np

    from edgelm.errors import EdgelmError
    from edgelm.route.model import is_routed

    if not texts or any(not t.strip() for t in texts):
        raise EdgelmError("give at least one non-blank sentence")
    if is_routed(model):
        from edgelm.route.model import RoutedModel

        routed = RoutedModel.load(model)
        names = routed.names
        pick = routed.route_texts(list(texts), tau=tau, k_max=k_max)
        weights, chosen = pick["weights"].numpy(), pick["chosen"].numpy()
    else:
        from edgelm.runtime import Model

        m = Model.load(model)
        if "routed" not in m.bundle.config:
            raise EdgelmError(f"{model} is not a routed bundle")
        backend = m.backend
        if tau is not None or k_max is not None:
            from edgelm.kernels.routing import check_options

            backend.tau = backend.tau if tau is None else tau
            backend.k_max = backend.k_max if k_max is None else k_max
            check_options(len(backend.names), backend.tau, backend.k_max, backend.general)
        ids, mask = m.encode(list(texts))
        pick = backend.choose(np.asarray(backend.body(ids, mask), dtype=np.float32), mask)
        names, weights, chosen = backend.names, pick["weights"], pick["chosen"]
    result = {"experts": names, "routes": [
        {"text": t, "chosen": [names[e] for e in np.flatnonzero(c)], "weights": dict(zip(names, map(float, w)))}
        for t, c, w in zip(texts, chosen, weights)], "mean_experts": float(np.asarray(chosen).sum(1).mean())}

    def render(r: dict) -> None:
        rows = [[x["text"][:60], ", ".join(x["chosen"]), *(x["weights"][n] for n in r["experts"])] for x in r["routes"]]
        out.print(table(f"routing ({r['mean_experts']:.2f} experts per sentence)", ["text", "runs", *r["experts"]], rows))

    emit(result, as_json=as_json, json_out=None, render=render)
