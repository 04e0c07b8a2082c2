"""What makes a folder a routed model, and how its files are named: torch-free, so that telling artefacts
apart (`edgelm.artifacts`) never needs torch."""

from __future__ import annotations

from pathlib import Path

ROUTED_FILE = "routed.json"
FORMAT = "edgelm.routed/1"


def is_routed(path: str | Path) -> bool:
    return (Path(path) / ROUTED_FILE).is_file()


def safe_name(name: str) -> str:
    """`name` as a file or signature name: a SIB-200 topic such as science/technology has a slash."""
    return "".join(c if c.isalnum() else "_" for c in name)


def expert_file(name: str) -> str:
    """The file name of expert `name` in a routed folder."""
    return safe_name(name) + ".safetensors"
