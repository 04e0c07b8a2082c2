"""edgelm: multilingual language models distilled for the devices people use.

The public surface is small; everything else is free to move.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["EdgelmError", "Encoder", "__version__", "evaluate_model", "pull_teacher"]


def __getattr__(name: str):
    # Lazy: `import edgelm` (and the device runtime) must not pull in torch or transformers.
    if name == "EdgelmError":
        from edgelm.errors import EdgelmError

        return EdgelmError
    if name == "Encoder":
        from edgelm.encoder import Encoder

        return Encoder
    if name == "evaluate_model":
        from edgelm.evaluate import evaluate_model

        return evaluate_model
    if name == "pull_teacher":
        from edgelm.teacher.registry import pull_teacher

        return pull_teacher
    raise AttributeError(f"module 'edgelm' has no attribute {name!r}")
