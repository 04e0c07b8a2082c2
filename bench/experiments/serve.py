"""Load benchmark of `edgelm serve`: latency, throughput, errors and memory under concurrent clients,
then a burst of malformed requests.

    python -m edgelm.benchmarks.experiments.serve BUNDLE [--seconds 10] [--concurrency 1,4,16]
        [--threads N] [--out runs/bench-serve]

The server is a real `edgelm serve BUNDLE` process on 127.0.0.1; the clients are httpx async clients
in this process, each sending one real sentence (SIB-200 English test text) per request, back to back,
for --seconds at each concurrency. Reported: p50/p99 latency, requests/s, errors (must be 0), the
model calls the server made (concurrent requests share them) and the server's peak and current RSS.
Then 200 malformed requests, 16 at a time: every answer must be 4xx and the server still healthy.
On a 2-core machine the clients and the server share the cores: the absolute numbers are this
machine's, the comparison between concurrency levels is what carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

MALFORMED = [  # (body bytes, extra headers): each must get a 4xx
    (b'{"input": ', {}), (b"[1, 2]", {}), (b'{"model": "m"}', {}), (b'{"input": []}', {}),
    (b'{"input": [[101, 102]]}', {}), (b'{"input": 3.5}', {}), (b'{"input": "a", "encoding_format": "x"}', {}),
    (b"\xff\xfe\x00", {}), (json.dumps({"input": ["a"] * 10_000}).encode(), {}),
    (json.dumps({"input": "a" * 30_000}).encode(), {}), (json.dumps({"input": "a", "pad": "x" * (2 << 20)}).encode(), {}),
]


def _status(pid: int) -> dict:
    """Peak (VmHWM) and current (VmRSS) resident memory of process `pid`, MB (Linux)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return {"peak_rss_mb": out.get("VmHWM"), "rss_mb": out.get("VmRSS")}


def start_server(bundle: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edgelm", "serve", str(bundle), "--port", "0", *extra],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "EDGELM_PROGRESS": "0"})
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, m.group(1)
    sys.exit(f"edgelm serve {bundle} did not start (exit {proc.wait()})")


async def load(url: str, path: str, texts: list[str], concurrency: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        i = k
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await c.post(path, json={"model": "edgelm", "input": [texts[i % len(texts)]]})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - t0)
                i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    wall = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")  # noqa: E731
    return {"concurrency": concurrency, "requests": len(ms), "errors": len(errors), "error_examples": errors[:3],
            "requests_per_s": round(len(ms) / wall, 1), "p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2)}


async def malformed(url: str, path: str, n: int = 200, concurrency: int = 16) -> dict:
    import httpx

    statuses: list[int] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        async def one(k: int) -> None:
            body, headers = MALFORMED[k % len(MALFORMED)]
            async with sem:
                try:
                    r = await c.post(path, content=body, headers={"content-type": "application/json", **headers})
                    statuses.append(r.status_code)
                except httpx.HTTPError:
                    statuses.append(0)  # the connection failed: not an answer

        await asyncio.gather(*(one(k) for k in range(n)))
        health = (await c.get("/health")).json()
        good = await c.post(path, json={"input": "still answering?"})
    by_class = {}
    for s in statuses:
        by_class[f"{s // 100}xx" if s else "no answer"] = by_class.get(f"{s // 100}xx" if s else "no answer", 0) + 1
    return {"requests": n, "answers": by_class, "all_4xx": by_class == {"4xx": n},
            "healthy_after": health.get("status") == "ok" and good.status_code == 200}


def render(result: dict) -> str:
    m = result["machine"]
    lines = [f"`edgelm serve` load benchmark ({m.get('cpu')}, {m.get('cores')} cores, commit {m.get('commit')}): "
             f"bundle {result['bundle']['path']} ({result['bundle']['task']}, {result['bundle']['backend']}), "
             f"one sentence per request, {result['args']['seconds']} s per level, clients on the same machine.", "",
             "| concurrency | requests | requests/s | p50 ms | p99 ms | errors | model calls | server peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["levels"]:
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['errors']} | {r['model_calls']} | {r['peak_rss_mb']} |")
    b = result["malformed"]
    lines += ["", f"Malformed burst: {b['requests']} requests, answers {b['answers']}; all 4xx: "
                  f"{'yes' if b['all_4xx'] else 'NO'}; healthy after: {'yes' if b['healthy_after'] else 'NO'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="bundle folder to serve (e.g. runs/demo/swh-int8 after `make demo`)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of load at each concurrency")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--threads", type=int, default=None, help="the server's runtime threads")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs") / "bench-serve")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not levels or min(levels) < 1 or args.seconds <= 0:
        sys.exit("--concurrency takes positive integers and --seconds a positive number")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx

    from edgelm.benchmarks.harness import bench_texts, machine_info, save_results

    texts = bench_texts(args.data, [(str(args.bundle), "")])
    extra = ["--threads", str(args.threads)] if args.threads else []
    proc, url = start_server(args.bundle, extra)
    try:
        info = httpx.get(url + "/health").json()
        path = info["endpoint"]
        rows = []
        for c in levels:
            calls = httpx.get(url + "/health").json()["model_calls"]
            row = asyncio.run(load(url, path, texts, c, args.seconds))
            row["model_calls"] = httpx.get(url + "/health").json()["model_calls"] - calls
            row.update(_status(proc.pid))
            rows.append(row)
            print(f"concurrency {c}: {row['requests_per_s']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                  f"{row['errors']} errors", file=sys.stderr)
        burst = asyncio.run(malformed(url, path))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"args": {"seconds": args.seconds, "concurrency": levels, "threads": args.threads},
              "machine": machine_info(),
              "bundle": {"path": str(args.bundle), "task": info["task"], "backend": info["backend"]},
              "levels": rows, "malformed": burst}
    md = render(result)
    save_results(result, md, args.out, "serve", kind="serve")
    print(md)
    if any(r["errors"] for r in rows) or not burst["all_4xx"] or not burst["healthy_after"]:
        sys.exit("the server failed requests it should have answered (see the table)")


if __name__ == "__main__":
    main()
