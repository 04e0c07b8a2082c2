"""Where the data sets live: `--data DIR`, else `$EDGELM_DATA`, else `../shared/data` when it exists."""

from __future__ import annotations

import os
from pathlib import Path

from edgelm.errors import EdgelmError


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data folder; raise a one-line error when none is usable."""
    if explicit is not None:
        root, origin = Path(explicit), "--data"
    elif os.environ.get("EDGELM_DATA"):
        root, origin = Path(os.environ["EDGELM_DATA"]), "EDGELM_DATA"
    else:
        candidates = [Path.cwd() / ".." / "shared" / "data"]
        candidates += [parent / "shared" / "data" for parent in Path(__file__).resolve().parents]
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise EdgelmError(
                "no data folder: pass --data DIR or set EDGELM_DATA (expected sib200/ and tatoeba/ inside)"
            )
        return found.resolve()
    if not root.is_dir():
        raise EdgelmError(f"data folder {root} (from {origin}) does not exist")
    return root.resolve()
