"""Reading safetensors files: the one reader every artefact uses (routed experts, routers, work files).

safetensors is the only weight format edgelm reads: no pickle, no code. `framework="np"` keeps the
device side free of torch.
"""

from __future__ import annotations

from pathlib import Path

from edgelm.errors import EdgelmError


def read_tensors(path: str | Path, what: str, framework: str = "pt") -> tuple[dict[str, str], dict]:
    """(metadata, tensors) of one safetensors file; a missing or corrupt file is a one-line error naming `what`."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise EdgelmError("reading weights needs safetensors: pip install 'edgelm[device]'") from None
    f = Path(path)
    if not f.is_file():
        raise EdgelmError(f"{what} is missing: {f}")
    try:
        with safe_open(str(f), framework) as fh:
            return fh.metadata() or {}, {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise EdgelmError(f"{what} ({f.name}) is corrupt: {str(exc).splitlines()[0][:120]}") from None

