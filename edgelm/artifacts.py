"""Every kind of artefact edgelm writes, how to tell one from another, and `load()`, which opens any of them.

Each kind is a folder that says what it is, in a file its writer puts there and its reader checks:

| kind | says so in | written by | read by |
|---|---|---|---|
| encoder / student | config.json `edgelm.artifact` | `encoder.save_encoder` | `encoder.Encoder.load` |
| task_model | config.json `edgelm.artifact` | `task_model.save_task_model` | `task_model.TaskModel.load` (sentences), `task_model.TaggerModel.load` (words) |
| routed | routed.json `format` | `routing.model.save_routed` | `routing.model.RoutedModel.load` |
| bundle | manifest.json `kind`, `bundle_format` | `runtime.bundle.write_manifest` (after `exporters`) | `runtime.bundle.Bundle.open` |

Each reader refuses a format newer than it knows and keeps reading the older ones. `load` returns an
object typed by what it can do (`edgelm.protocols`): an `Embedder`, a `Classifier`, or both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgelm.errors import EdgelmError

KINDS = ("encoder", "student", "task_model", "routed", "bundle")


def split_routing(spec: str | os.PathLike[str]) -> tuple[str, str | None]:
    """`FOLDER@ROUTING` -> (FOLDER, ROUTING) when FOLDER is a routed model or bundle; else (spec, None)."""
    from edgelm.routing.format import is_routed
    from edgelm.runtime.bundle import is_bundle

    text = str(spec)
    head, sep, routing = text.rpartition("@")
    if not sep or Path(text).exists() or not head:
        return text, None
    if is_routed(head) or is_bundle(head):
        return head, routing
    if Path(head).exists():
        raise EdgelmError(f"{head} is not a routed model; a routing (@{routing}) applies to routed models and "
                          "bundles only")
    return text, None


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """The kind of artefact folder `path` is, or None when it is none of edgelm's."""
    from edgelm.checkpoint import describe_checkpoint
    from edgelm.routing.format import is_routed
    from edgelm.runtime.bundle import is_bundle

    path = Path(path)
    if is_bundle(path):
        return "bundle"
    if is_routed(path):
        return "routed"
    if (path / "config.json").is_file():
        return describe_checkpoint(path)["kind"]
    return None


def describe(path: str | os.PathLike[str]) -> dict:
    """What a folder says about itself: kind, format version, edgelm version and provenance."""
    from edgelm.checkpoint import describe_checkpoint

    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise EdgelmError(f"{path} is not an edgelm artefact (no manifest.json, routed.json or config.json)")
    if kind in ("encoder", "student", "task_model"):
        return describe_checkpoint(path)
    header = json.loads((path / ("manifest.json" if kind == "bundle" else "routed.json")).read_text(encoding="utf-8"))
    if kind == "bundle":
        return {"kind": kind, "format": header.get("bundle_format"), "edgelm_version": header.get("edgelm_version"),
                "provenance": header.get("export", {})}
    return {"kind": kind, "format": header.get("format"), "edgelm_version": header.get("edgelm_version"),
            "provenance": {k: header.get(k) for k in ("student", "teacher", "languages", "grouping", "domains")}}


def load(name_or_path: str | os.PathLike[str], *, routing: str | None = None, prefix: str | None = None,
         backend: str | None = None, threads: int | None = None, max_length: int = 512):
    """Open any model edgelm knows: a bundled teacher name (`e5-small`), a hub id, or a folder of any kind.

    - a checkpoint (teacher, student): an `Encoder` (torch);
    - a task model: a `TaskModel` (torch; classifies sentences, and embeds with its body) or a `TaggerModel`
      (tags words);
    - a routed model, `FOLDER` or `FOLDER@ROUTING` (learned, oracle, dense or one expert): a `RoutedEncoder`;
    - a bundle, `BUNDLE` or `BUNDLE@ROUTING` for a routed one: its device runtime (`runtime.Model`, no torch),
      sha256- and parity-checked; `backend` and `threads` choose the runtime.
    `prefix` overrides a checkpoint's text prefix (a bundle's is fixed at export); `threads` is the runtime's
    for a bundle, torch's otherwise.
    """
    spec, at = split_routing(name_or_path)
    if routing is not None and at is not None and routing != at:
        raise EdgelmError(f"{name_or_path} names routing {at!r} and the call asks for {routing!r}")
    routing = routing or at
    if not Path(spec).exists():  # a bundled teacher name or a hub id: its checkpoint folder says what it is
        from edgelm.teacher.registry import resolve_model

        spec = str(resolve_model(spec))
    kind = kind_of(spec)
    if kind == "bundle":
        from edgelm.runtime.model import Model

        if prefix is not None:
            raise EdgelmError("a bundle's prefix is fixed at export; --prefix applies to checkpoints")
        return Model.load(spec, backend=backend, threads=threads, routing=routing)
    if backend is not None:
        raise EdgelmError(f"{spec} is not a bundle; a runtime backend applies to bundles only")
    if kind == "routed":
        from edgelm.routing.format import routed_design

        if threads:
            import torch

            torch.set_num_threads(threads)
        if routed_design(spec) == "specialists":
            from edgelm.routing.specialists import SpecialistsEncoder

            if prefix is not None:
                raise EdgelmError("each specialist keeps its own recipe; --prefix applies to single checkpoints")
            return SpecialistsEncoder.load(spec, routing or "learned")
        from edgelm.routing.encoder import RoutedEncoder

        return RoutedEncoder.load(spec, routing or "learned", prefix=prefix, max_length=max_length)
    if routing is not None:
        raise EdgelmError(f"{spec} is not a routed model; a routing applies to routed models and bundles only")
    if threads:
        import torch

        torch.set_num_threads(threads)
    if kind == "task_model":
        from edgelm.checkpoint import task_head
        from edgelm.task_model import TaggerModel, TaskModel

        opener = TaggerModel if task_head(Path(spec)) == "token" else TaskModel
        return opener.load(spec, prefix=prefix, max_length=max_length)
    from edgelm.encoder import Encoder

    return Encoder.load(spec, prefix=prefix, max_length=max_length)
