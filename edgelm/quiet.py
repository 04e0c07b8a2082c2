"""Silence native libraries that write to file descriptors 1 and 2 directly (C++ logs, converter
progress lines), which Python's redirection cannot catch."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Send everything written to stdout/stderr (Python and native) to a scratch file meanwhile."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stdout.flush(), sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            for fd, keep in zip((1, 2), saved):
                os.dup2(keep, fd)
                os.close(keep)


def quiet_optional_imports() -> None:
    """transformers imports torchao when it is installed (the tflite extra brings it), and torchao
    greets with missing-CUDA-kernel and deprecation lines; import it once with those silenced."""
    import importlib.util
    import logging

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's enum registrations
    if "torchao" not in sys.modules and importlib.util.find_spec("torchao") is not None:
        with quiet_native_output():
            import torchao  # noqa: F401
