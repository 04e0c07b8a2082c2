"""`edgelm serve`: a real server process on real bundles, called with the `openai` client and httpx."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from edgelm.runtime import Model


@pytest.fixture(scope="module")
def bundles(tiny_teacher, tiny_classifier, tiny_tagger, data_dir, tmp_path_factory) -> dict[str, Path]:
    from edgelm.exporters.bundle import export_bundle

    root = tmp_path_factory.mktemp("serve-bundles")
    return {name: Path(export_bundle(str(src), "onnx", "int8", root / name, data=data_dir)["path"])
            for name, src in (("embed", tiny_teacher), ("classify", tiny_classifier), ("tag", tiny_tagger))}


@contextmanager
def server(bundle: Path, *args: str):
    """`edgelm serve BUNDLE --port 0 ARGS` in its own process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "edgelm", "serve", str(bundle), "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "EDGELM_PROGRESS": "0"})
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if m:
                break
        else:
            raise AssertionError(f"the server did not start: {''.join(seen)}")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


SENTENCES = ["Habari ya asubuhi, rafiki yangu.", "The train leaves at noon.", "Serikali imetangaza bajeti mpya.",
             "A short one.", "Wanafunzi walisoma vitabu vingi shuleni jana jioni kabla ya mtihani."]


def _cos(a, b) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_openai_client_gets_the_runtime_embeddings(bundles):
    from openai import AuthenticationError, OpenAI

    want = Model.load(bundles["embed"]).embed(SENTENCES)
    with server(bundles["embed"], "--api-key", "sesame") as url:
        client = OpenAI(base_url=url + "/v1", api_key="sesame", max_retries=0)
        got = client.embeddings.create(model="edgelm", input=SENTENCES)  # the client asks for base64
        assert [d.index for d in got.data] == list(range(len(SENTENCES)))
        assert _cos([d.embedding for d in got.data], want).min() > 0.999
        one = client.embeddings.create(model="edgelm", input=SENTENCES[0], encoding_format="float")
        assert len(one.data) == 1 and len(one.data[0].embedding) == want.shape[1]
        assert _cos(one.data[0].embedding, want[0]) > 0.999
        assert got.usage.prompt_tokens > len(SENTENCES)
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).embeddings.create(model="m", input="x")
        assert httpx.get(url + "/health").json()["status"] == "ok"  # health needs no key


def test_concurrent_requests_share_model_calls(bundles):
    want = Model.load(bundles["embed"]).embed(SENTENCES)
    results, failures = {}, []

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as c:
            for j in range(4):
                i = (k + j) % len(SENTENCES)
                r = c.post(url + "/v1/embeddings", json={"model": "m", "input": [SENTENCES[i]]})
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    results[(k, j)] = (i, r.json()["data"][0]["embedding"])

    with server(bundles["embed"]) as url:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        health = httpx.get(url + "/health").json()
    assert not failures and len(results) == 64
    assert min(_cos(vec, want[i]) for i, vec in results.values()) > 0.999
    assert health["model_calls"] < 64  # concurrent requests were answered by shared model calls
    assert health["waiting_texts"] == 0


def test_classify_and_tag_endpoints(bundles):
    clf = Model.load(bundles["classify"])
    with server(bundles["classify"]) as url:
        r = httpx.post(url + "/v1/classify", json={"input": SENTENCES})
        assert r.status_code == 200
        data = r.json()["data"]
        assert [d["label"] for d in data] == [p["label"] for p in clf.predict(SENTENCES)]
        assert set(data[0]["probabilities"]) == set(clf.labels)
        wrong = httpx.post(url + "/v1/embeddings", json={"input": "x"})
        assert wrong.status_code == 404 and "/v1/classify" in wrong.json()["error"]["message"]
    tagger = Model.load(bundles["tag"])
    text = "Rais Samia Suluhu Hassan alitembelea Dodoma jana."
    with server(bundles["tag"]) as url:
        body = httpx.post(url + "/v1/tag", json={"input": [text]}).json()
    words = body["data"][0]["words"]
    assert [w["word"] for w in words] == [w["word"] for w in tagger.tag([text])[0]]
    assert [w["tag"] for w in words] == [w["tag"] for w in tagger.tag([text])[0]]
    assert body["scheme"] == "bio" and "entities" in body["data"][0]
    assert all(text[w["start"]:w["end"]] == w["word"] for w in words)


BAD = [  # (what, method, path, body bytes or JSON, extra headers, expected status)
    ("not JSON", "POST", "/v1/embeddings", b'{"input": ', {}, 400),
    ("not UTF-8", "POST", "/v1/embeddings", b'{"input": "\xff\xfe"}', {}, 400),
    ("a JSON list", "POST", "/v1/embeddings", ["a"], {}, 400),
    ("no input", "POST", "/v1/embeddings", {"model": "m"}, {}, 400),
    ("empty list", "POST", "/v1/embeddings", {"input": []}, {}, 400),
    ("token ids", "POST", "/v1/embeddings", {"input": [[1, 2, 3]]}, {}, 400),
    ("a number", "POST", "/v1/embeddings", {"input": 7}, {}, 400),
    ("blank text", "POST", "/v1/embeddings", {"input": ["  "]}, {}, 400),
    ("lone surrogate", "POST", "/v1/embeddings", b'{"input": "\\ud800"}', {}, 400),
    ("bad format", "POST", "/v1/embeddings", {"input": "a", "encoding_format": "int8"}, {}, 400),
    ("wrong dimensions", "POST", "/v1/embeddings", {"input": "a", "dimensions": 3}, {}, 400),
    ("too many texts", "POST", "/v1/embeddings", {"input": ["a"] * 9}, {}, 413),
    ("too long a text", "POST", "/v1/embeddings", {"input": "a" * 101}, {}, 413),
    ("too large a body", "POST", "/v1/embeddings", {"input": "a", "pad": "x" * 5000}, {}, 413),
    ("wrong task", "POST", "/v1/tag", {"input": "a"}, {}, 404),
    ("unknown path", "POST", "/v1/chat/completions", {"input": "a"}, {}, 404),
    ("GET on a POST endpoint", "GET", "/v1/embeddings", None, {}, 405),
]


def test_bad_requests_get_4xx_json_and_the_server_lives_on(bundles):
    with server(bundles["embed"], "--max-texts", "8", "--max-chars", "100", "--max-bytes", "4096") as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        for what, method, path, body, headers, status in BAD:
            content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            r = c.request(method, path, content=content, headers={"content-type": "application/json", **headers})
            assert r.status_code == status, (what, r.status_code, r.text)
            error = r.json()["error"]
            assert error["message"] and error["code"] == status, what
        # a body sent in chunks, without a length, is bounded as well
        r = c.post("/v1/embeddings", content=iter([b'{"input": "', b"a" * 5000, b'"}']))
        assert r.status_code == 413
        assert c.get("/health").json()["status"] == "ok"
        assert c.post("/v1/embeddings", json={"input": "still here"}).status_code == 200


def test_serve_binds_localhost_and_refuses_bad_settings(bundles, tmp_path, cli):
    with server(bundles["embed"]) as url:
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        busy = cli("serve", str(bundles["embed"]), "--port", str(port))
        assert busy.code == 2 and busy.stderr.count("error:") == 1 and str(port) in busy.stderr
    for args, words in ((["--max-texts", "0"], "--max-texts"), (["--port", "70000"], "--port"),
                        (["--max-wait-ms", "-1"], "--max-wait-ms")):
        r = cli("serve", str(bundles["embed"]), *args)
        assert r.code == 2 and words in r.stderr, r.stderr
    r = cli("serve", str(tmp_path))
    assert r.code == 2 and "error:" in r.stderr


def test_port_zero_means_a_free_port():
    from edgelm.runtime.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0 and sock.family == socket.AF_INET
    finally:
        sock.close()
