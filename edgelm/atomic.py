"""Atomic outputs: a folder or file appears complete under its final name, or not at all.

Everything edgelm writes (converted teachers, students, bundles, reports) goes through here, so a
kill, a full disk or an exception never leaves a half-written artefact that a later run would load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_tree(path: Path) -> None:
    """Flush every file to disk; files written private (safetensors' writer, mkstemp) become ordinary (0644)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            f = os.path.join(root, name)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            if os.stat(f).st_mode & 0o077 == 0:
                os.chmod(f, 0o666 & ~_umask())


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; rename it to `final` on success.

    On any exception the temporary folder is removed and `final` is untouched. With
    `replace=True` an existing `final` is swapped out only after the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} appeared while it was being written")
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
