"""`edgelm serve`: a bundle behind a local HTTP endpoint (OpenAI-style embeddings, classify, tag)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import err
from edgelm.errors import EdgelmError


def serve_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (from `edgelm export`).")],
    host: Annotated[str, typer.Option(help="Address to bind: 127.0.0.1 keeps it on this device; 0.0.0.0 opens it "
                                           "to the network (set an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free one, printed).")] = 8080,
    api_key: Annotated[Optional[str], typer.Option(envvar="EDGELM_API_KEY", help="Require 'Authorization: Bearer "
                                                   "KEY' (or set EDGELM_API_KEY).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="onnxruntime (ONNX) | litert or tflite-runtime (TFLite).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the runtime's own choice).")] = None,
    max_texts: Annotated[int, typer.Option(help="Texts in one request.")] = 256,
    max_chars: Annotated[int, typer.Option(help="Characters in one text.")] = 20_000,
    max_bytes: Annotated[int, typer.Option(help="Bytes in one request body.")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(help="Texts in one model call, gathered across concurrent requests.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="How long a model call waits for other requests to join it.")] = 2.0,
    max_pending: Annotated[int, typer.Option(help="Texts waiting for the model before requests get 503.")] = 4096,
) -> None:
    """Serve a bundle over HTTP on the torch-free runtime: POST /v1/embeddings (OpenAI's shape), /v1/classify
    or /v1/tag by the bundle's task, GET /health."""
    try:
        from edgelm.runtime.server import Limits, bind, serve
    except ImportError as exc:
        raise EdgelmError(f"edgelm serve needs the server extra ({exc.name} is missing): "
                          "pip install 'edgelm[serve]'") from None
    from edgelm.runtime import Model

    if not 0 <= port < 65536:
        raise EdgelmError(f"--port must be in 0..65535, not {port}")
    limits = Limits(max_bytes=max_bytes, max_texts=max_texts, max_chars=max_chars, max_batch=max_batch,
                    max_wait_ms=max_wait_ms, max_pending=max_pending)
    limits.check()
    model = Model.load(bundle, backend=runtime, threads=threads)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        err.print(f"warning: serving on {host} without an API key: anyone who can reach this port can use the model")
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    path = {"embedding": "embeddings", "classification": "classify", "tagging": "tag"}[model.task]
    err.print(f"serving {model.task} bundle {bundle} ({model.backend_name}) on http://{host}:{bound} — "
              f"POST /v1/{path}, GET /health; Ctrl-C stops", soft_wrap=True)
    serve(model, sock, limits=limits, api_key=api_key or None, log_level=os.environ.get("EDGELM_SERVE_LOG", "warning"))
