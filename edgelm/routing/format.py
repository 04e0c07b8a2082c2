"""What makes a folder a routed model, and how its files are named: torch-free, so that telling artefacts
apart (`edgelm.artifacts`) never needs torch."""

from __future__ import annotations

from pathlib import Path

ROUTED_FILE = "routed.json"
FORMAT = "edgelm.routed/1"  # a shared body, experts its top layers (`edgelm route train`)
SPECIALISTS_FORMAT = "edgelm.routed-specialists/1"  # whole models as experts (`edgelm route build`)


def is_routed(path: str | Path) -> bool:
    return (Path(path) / ROUTED_FILE).is_file()


def routed_design(path: str | Path) -> str:
    """`body` (route train: shared body, top-layer experts) or `specialists` (route build: whole models)."""
    import json

    try:
        meta = json.loads((Path(path) / ROUTED_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "body"  # its reader gives the one-line error
    return "specialists" if isinstance(meta, dict) and meta.get("format") == SPECIALISTS_FORMAT else "body"


def safe_name(name: str) -> str:
    """`name` as a file or signature name: a SIB-200 topic such as science/technology has a slash."""
    return "".join(c if c.isalnum() else "_" for c in name)


def expert_file(name: str) -> str:
    """The file name of expert `name` in a routed folder."""
    return safe_name(name) + ".safetensors"
