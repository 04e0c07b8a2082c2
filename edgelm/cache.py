"""edgelm's cache folder: `$EDGELM_CACHE`, else `$XDG_CACHE_HOME/edgelm`, else `~/.cache/edgelm`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The root of edgelm's cache (not created here)."""
    if os.environ.get("EDGELM_CACHE"):
        return Path(os.environ["EDGELM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "edgelm"
