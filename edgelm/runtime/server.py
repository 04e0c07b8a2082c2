"""A local HTTP server for a bundle, on the torch-free runtime: what other programs on a device call.

    app = make_app(Model.load("bundle/"), Limits())      # a Starlette (ASGI) app
    serve(model, host="127.0.0.1", port=8080)            # ... run by uvicorn

Endpoints: `GET /health`, `GET /v1/models`, and by the bundle's task `POST /v1/embeddings` (OpenAI's
request and response shape, float or base64 vectors), `POST /v1/classify` or `POST /v1/tag`.
Starlette and uvicorn are the maintained ASGI pair: pure Python (they install on a Pi), no HTTP
parsing of our own, and asyncio lets concurrent requests share one model call. Requests are
bounded (body bytes, texts per request, characters per text, texts waiting); every bad request gets
a 4xx JSON error in OpenAI's `{"error": {...}}` shape, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgelm.errors import EdgelmError

ENDPOINTS = {"embedding": "/v1/embeddings", "classification": "/v1/classify", "tagging": "/v1/tag"}


@dataclass(frozen=True)
class Limits:
    """What one request, and the server as a whole, may ask of the model."""

    max_bytes: int = 1 << 20  # request body
    max_texts: int = 256  # texts in one request
    max_chars: int = 20_000  # characters in one text (longer token sequences are truncated, as `edgelm run` does)
    max_batch: int = 64  # texts in one model call, gathered across concurrent requests
    max_wait_ms: float = 2.0  # how long a model call waits for more requests to join it
    max_pending: int = 4096  # texts waiting for the model; beyond it requests get 503

    def check(self) -> None:
        for name in ("max_bytes", "max_texts", "max_chars", "max_batch", "max_pending"):
            if getattr(self, name) < 1:
                raise EdgelmError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_wait_ms < 0:
            raise EdgelmError("--max-wait-ms cannot be negative")


class RequestError(Exception):
    """A request the server refuses: HTTP status, message, and the offending parameter."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


class Batcher:
    """Gathers the texts of concurrent requests into model calls of up to `max_batch` texts, run one
    at a time in a worker thread (the runtime's own threads do the parallel work)."""

    def __init__(self, run: Callable[[list[str]], list], limits: Limits):
        self.run, self.limits = run, limits
        self.queue: asyncio.Queue | None = None
        self.pending = 0
        self.calls = 0
        self.worker: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    async def submit(self, texts: list[str]) -> list:
        if self.pending + len(texts) > self.limits.max_pending:
            raise RequestError(503, f"the server is busy ({self.pending} texts waiting); retry shortly",
                               kind="server_busy")
        future = asyncio.get_running_loop().create_future()
        self.pending += len(texts)
        await self.queue.put((texts, future))
        try:
            return await future
        finally:
            self.pending -= len(texts)

    async def _work(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0][0])
            deadline = time.monotonic() + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch:
                try:
                    job = self.queue.get_nowait() if time.monotonic() >= deadline else await asyncio.wait_for(
                        self.queue.get(), deadline - time.monotonic())
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                jobs.append(job)
                size += len(job[0])
            texts = [t for job, _ in jobs for t in job]
            try:
                results = await asyncio.to_thread(self.run, texts)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure, the worker lives on
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.calls += 1
            start = 0
            for job, future in jobs:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(results[start : start + len(job)])
                start += len(job)


def texts_of(body: dict, limits: Limits) -> list[str]:
    """The request's `input` (a string or a list of strings) as a list of texts, checked against the limits."""
    if "input" not in body:
        raise RequestError(400, "the request needs an 'input': a string or a list of strings", "input")
    value = body["input"]
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise RequestError(400, "'input' must be a string or a non-empty list of strings", "input")
    if len(texts) > limits.max_texts:
        raise RequestError(413, f"'input' has {len(texts)} texts; this server takes at most {limits.max_texts} "
                                "per request", "input")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            what = "token ids" if isinstance(t, (int, list)) else type(t).__name__
            raise RequestError(400, f"input[{i}] is {what}, not a string: this server takes text", "input")
        if not t.strip():
            raise RequestError(400, f"input[{i}] is empty", "input")
        if len(t) > limits.max_chars:
            raise RequestError(413, f"input[{i}] has {len(t)} characters; this server takes at most "
                                    f"{limits.max_chars}", "input")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(400, f"input[{i}] is not valid Unicode (a lone surrogate)", "input") from None
    return texts


def make_app(model, limits: Limits | None = None, *, api_key: str | None = None, name: str | None = None):
    """The Starlette app serving `model` (a loaded runtime `Model`) within `limits`."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    limits = limits or Limits()
    limits.check()
    task = model.task
    name = name or model.path.name
    batcher = Batcher(_runner(model), limits)

    def error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                            status_code=status)

    async def read_json(request: Request) -> dict:
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                raise RequestError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                                   kind="authentication_error")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_bytes):
            raise RequestError(413, f"the request body is larger than this server takes ({limits.max_bytes} bytes)")
        body = bytearray()
        async for chunk in request.stream():  # a body sent without a length is bounded too
            body += chunk
            if len(body) > limits.max_bytes:
                raise RequestError(413, f"the request body is larger than this server takes ({limits.max_bytes} bytes)")
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError(400, f"the request body is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise RequestError(400, "the request body must be a JSON object")
        return data

    def usage(texts: list[str]) -> dict:
        tokens = model.count_tokens(texts)
        return {"prompt_tokens": tokens, "total_tokens": tokens}

    async def embeddings(request: Request):
        body = await read_json(request)
        texts = texts_of(body, limits)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise RequestError(400, "'encoding_format' must be 'float' or 'base64'", "encoding_format")
        if body.get("dimensions") not in (None, model_dim()):
            raise RequestError(400, f"this model's vectors have {model_dim()} dimensions; it cannot give "
                                    f"{body['dimensions']!r}", "dimensions")
        vectors = await batcher.submit(texts)
        data = [{"object": "embedding", "index": i,
                 "embedding": (base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
                               if fmt == "base64" else [float(x) for x in v])} for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "data": data, "model": body.get("model") or name,
                             "usage": usage(texts)})

    def model_dim() -> int | None:
        return model.dimension

    async def labelled(request: Request):  # /v1/classify and /v1/tag: a result per text
        body = await read_json(request)
        texts = texts_of(body, limits)
        results = await batcher.submit(texts)
        about = {"labels": model.labels} if task == "classification" else {"scheme": model.scheme}
        return JSONResponse({"object": "list", "model": body.get("model") or name, **about,
                             "data": [{"index": i, **r} for i, r in enumerate(results)], "usage": usage(texts)})

    async def health(request: Request):
        return JSONResponse({"status": "ok", "model": name, "task": task, "endpoint": ENDPOINTS[task],
                             "backend": model.backend_name, "waiting_texts": batcher.pending,
                             "model_calls": batcher.calls})

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "edgelm",
                                                         "created": 0, "task": task}]})

    async def wrong_task(request: Request):
        raise RequestError(404, f"this server runs a {task} bundle: use POST {ENDPOINTS[task]}")

    async def on_request_error(request: Request, exc: RequestError):
        return error(exc.status, exc.message, exc.param, exc.kind)

    async def on_http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    async def on_any_error(request: Request, exc: Exception):
        if isinstance(exc, EdgelmError):
            return error(400, str(exc))
        return error(500, f"the model failed on this request: {type(exc).__name__}", kind="server_error")

    handlers = {"embedding": embeddings, "classification": labelled, "tagging": labelled}
    routes = [Route("/health", health), Route("/v1/models", models)]
    routes += [Route(path, handlers[task] if kind == task else wrong_task, methods=["POST"])
               for kind, path in ENDPOINTS.items()]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={RequestError: on_request_error, HTTPException: on_http_error,
                                        Exception: on_any_error})
    app.state.batcher = batcher
    return app


def _runner(model) -> Callable[[list[str]], list]:
    """The one model call the batcher makes for a list of texts, by the bundle's task."""
    if model.task == "embedding":
        return lambda texts: list(model.embed(texts))
    if model.task == "classification":
        return model.predict
    if model.task == "tagging":
        from edgelm.words import entity_spans

        def tag(texts: list[str]) -> list[dict]:
            words = model.tag(texts)
            if model.scheme != "bio":
                return [{"words": w} for w in words]
            return [{"words": w, "entities": entity_spans(t, w)} for t, w in zip(texts, words)]

        return tag
    raise EdgelmError(f"{model.path} is a {model.task!r} bundle, which the server cannot serve")


def bind(host: str = "127.0.0.1", port: int = 8080):
    """A listening socket on (host, port); port 0 takes any free one. Bound here, before uvicorn starts,
    so that a port in use is an error the caller can word (uvicorn would log it and exit)."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise EdgelmError(f"cannot serve on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise EdgelmError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(model, sock, *, limits: Limits | None = None, api_key: str | None = None, log_level: str = "warning") -> None:
    """Serve `model` with uvicorn on the bound socket `sock` until interrupted."""
    import uvicorn

    app = make_app(model, limits, api_key=api_key)
    config = uvicorn.Config(app, log_level=log_level, access_log=False,
                            h11_max_incomplete_event_size=64 * 1024)  # the request line and headers are bounded too
    uvicorn.Server(config).run(sockets=[sock])
