"""`edgelm bench`: latency, throughput, memory, size and load time of bundles (or torch models).

One record per (target, runtime, threads, sequence length, batch size), each carrying the machine
it ran on. Inputs are real sentences from the data (SIB-200 test text, concatenated and cut to the
exact length), never zeros. With several targets the cases run interleaved, round by round, so a
noisy machine slows every case alike, and each row reports its ratio to the first target.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

RUNTIMES = ("onnxruntime", "torch")


def machine_info() -> dict:
    """CPU model, cores, OS, Python and runtime versions, edgelm version and git commit."""
    from edgelm import __version__

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("numpy", "tokenizers", "onnxruntime", "torch"):
        try:  # read from package metadata: recording a version must not import torch
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "os": platform.platform(),
            "python": platform.python_version(), "versions": versions, "edgelm": __version__, "commit": commit,
            "device_profile": os.environ.get("EDGELM_DEVICE", "this machine")}



@dataclass
class Record:
    target: str
    runtime: str
    threads: int
    seq_len: int
    batch: int
    samples_ms: list[float] = field(default_factory=list)
    load_s: float = 0.0
    file_mb: float = 0.0

    def summary(self) -> dict:
        s = np.array(self.samples_ms)
        return {"p50_ms": float(np.percentile(s, 50)), "p90_ms": float(np.percentile(s, 90)),
                "p99_ms": float(np.percentile(s, 99)), "mean_ms": float(s.mean()), "std_ms": float(s.std()),
                "throughput_per_s": float(self.batch * 1000 / s.mean())}


def real_inputs(texts: list[str], tokenizer_encode, seq_len: int, batch: int, pad_id: int = 1):
    """Token ids of real text cut to exactly `seq_len` (<s> … </s>), `batch` different rows."""
    rows = []
    for b in range(batch):
        ids: list[int] = []
        k = b
        while len(ids) < seq_len + 2:
            ids += tokenizer_encode(texts[k % len(texts)])[1:-1]
            k += batch
        rows.append([0, *ids[: seq_len - 2], 2])
    arr = np.array(rows, dtype=np.int64)
    return arr, np.ones_like(arr)


class _Runner:
    """A loaded target: a callable (ids, mask) -> outputs, plus its tokenizer."""

    def __init__(self, target: str, runtime: str, threads: int):
        started = time.perf_counter()
        path = Path(target)
        if runtime == "torch":
            import torch

            from edgelm.encoder import Encoder

            torch.set_num_threads(threads)
            enc = Encoder.load(target)
            self.encode = lambda t: enc.tokenizer(enc.recipe.prefix + t)["input_ids"]
            self.file_mb = sum(p.stat().st_size for p in enc.path.glob("*.safetensors")) / 2**20

            def call(ids, mask):
                with torch.inference_mode():
                    return enc.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))

            self.call = call
        else:
            from edgelm.runtime import Model

            if not (path / "manifest.json").is_file():
                raise EdgelmError(f"{target} is not a bundle; bench a checkpoint folder with --runtime torch")
            model = Model.load(path, backend=runtime, threads=threads)
            self.encode = lambda t: model.tokenizer.encode(model.prefix + t).ids
            self.file_mb = (path / model.bundle.config["model_file"]).stat().st_size / 2**20
            self.call = model.backend
        self.load_s = time.perf_counter() - started


def run_bench(targets: list[str], *, runtime: str = "onnxruntime", seq_lens=(32, 128), batches=(1,),
              threads: int = 1, runs: int = 30, warmup: int = 5, data: Path | None = None) -> dict:
    """Benchmark every (target, seq_len, batch); targets interleaved round by round."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import load_sib200

    if runtime not in RUNTIMES:
        raise EdgelmError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise EdgelmError("--runs and --threads must be at least 1")
    texts = [r.text for r in load_sib200(data_root(data), "eng_Latn", "test")]
    runners = {t: _Runner(t, runtime, threads) for t in targets}
    records: list[Record] = []
    cases = []
    for t, r in runners.items():
        for seq in seq_lens:
            for b in batches:
                ids, mask = real_inputs(texts, r.encode, seq, b)
                rec = Record(t, runtime, threads, seq, b, load_s=r.load_s, file_mb=r.file_mb)
                records.append(rec)
                cases.append((rec, r, ids, mask))
    for rec, r, ids, mask in cases:
        for _ in range(warmup):
            r.call(ids, mask)
    rounds = 5
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for rec, r, ids, mask in cases:
            for _ in range(per_round):
                t0 = time.perf_counter()
                r.call(ids, mask)
                rec.samples_ms.append((time.perf_counter() - t0) * 1000)
    first = {(rec.seq_len, rec.batch): rec.summary()["p50_ms"] for rec in records if rec.target == targets[0]}
    rows = []
    for rec in records:
        row = asdict(rec) | rec.summary()
        row["ratio_to_first"] = first[(rec.seq_len, rec.batch)] / row["p50_ms"]
        rows.append(row)
    return {"machine": machine_info(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "runs": per_round * rounds, "warmup": warmup, "records": rows}
