"""edgelm: multilingual language models distilled for the devices people use.

    import edgelm
    edgelm.distill("swh_Latn", out="runs/swh")                 # a bilingual student (BiStil)
    edgelm.route("runs/body", "swh_Latn,hin_Deva", out="runs/scar")   # SCAR over experts
    edgelm.export("runs/swh/general", "runs/swh-int8")         # a verified device bundle
    edgelm.load("runs/swh-int8").embed(["Habari ya asubuhi"])  # any artefact, typed by what it can do
    edgelm.evaluate(...), edgelm.bench(...), edgelm.metrics(...)

The public surface is this list; everything underneath is free to move. Names load lazily, so
`import edgelm` (and the device runtime) imports neither torch nor transformers.
"""

from __future__ import annotations

from edgelm.version import __version__

__all__ = ["Classifier", "EdgelmError", "Embedder", "Tagger", "__version__", "bench", "describe", "distill",
           "evaluate", "export", "load", "metrics", "pull_teacher", "route", "show_routes"]

_WHERE = {
    "EdgelmError": "edgelm.errors",
    "Embedder": "edgelm.protocols", "Classifier": "edgelm.protocols", "Tagger": "edgelm.protocols",
    "describe": "edgelm.artifacts",
    "pull_teacher": "edgelm.teacher.registry",
    **{name: "edgelm.api" for name in ("bench", "distill", "evaluate", "export", "load", "metrics", "route",
                                       "show_routes")},
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'edgelm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
