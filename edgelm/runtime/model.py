"""Run an edge bundle: tokenize with `tokenizers`, pad, call the runtime. Imports no torch.

    from edgelm.runtime import Model
    m = Model.load("bundle/")          # verifies sha256s, then replays the parity record
    m.embed(["Habari ya asubuhi"])     # sentence-embedding bundles
    m.predict(["..."])                 # classifier bundles: label + probabilities

On load every backend replays the bundle's parity record (real inputs with the source model's
outputs) and refuses to run when it disagrees: this is what catches a runtime that silently
returns zeros (tflite-runtime 2.14 on current int8 models).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.quiet import quiet_native_output
from edgelm.runtime.bundle import Bundle

BACKENDS = ("onnxruntime", "litert", "tflite-runtime")
# Which backends run which bundle target; the first is the default.
RUNS = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-runtime")}


class ParityError(EdgelmError):
    """The runtime's outputs disagree with the source model's beyond the bundle's tolerance."""


class _OnnxBackend:
    name = "onnxruntime"

    def __init__(self, model_file: Path, threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgelmError("the onnxruntime backend is not installed: pip install 'edgelm[device]'") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for corrupt files
            raise EdgelmError(f"onnxruntime cannot load {model_file.name}: {str(exc).splitlines()[0][:200]}") from None
        self.version = ort.__version__
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        """The graph's first output for its inputs in order (ids + mask, or hidden states + mask)."""
        return self.session.run(None, dict(zip(self.input_names, arrays)))[0]


def _interpreter_module(name: str):
    module, extra = {"litert": ("ai_edge_litert.interpreter", "'edgelm[device]'"),
                     "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime 'numpy<2'")}[name]
    try:
        import importlib

        return importlib.import_module(module)
    except ImportError:
        raise EdgelmError(f"the {name} backend is not installed: pip install {extra}") from None
    except Exception as exc:  # tflite-runtime 2.14 under numpy 2: AttributeError _ARRAY_API
        raise EdgelmError(f"the {name} backend does not load here ({str(exc).splitlines()[0][:120]}); "
                          "tflite-runtime needs numpy<2") from None


class _TfliteSignatures:
    """LiteRT (ai-edge-litert) or the legacy tflite-runtime over a file of fixed-length signatures.

    `signatures[part][bucket]` names the signature of one part (the whole model, or a routed bundle's
    body and experts) at one length. Signatures take one row; a batch runs row by row.
    """

    def __init__(self, model_file: Path, threads: int | None, signatures: dict[str, dict], inputs: list[str],
                 name: str = "litert"):
        interpreter = _interpreter_module(name)
        self.name, self.inputs = name, inputs
        try:
            # The interpreter logs its delegate to fd 2 on the first call of each signature: make those here.
            with quiet_native_output():
                self.interpreter = interpreter.Interpreter(str(model_file), num_threads=threads or None)
                self.runners = {part: {int(b): self.interpreter.get_signature_runner(s) for b, s in sigs.items()}
                                for part, sigs in signatures.items()}
                for part, runners in self.runners.items():
                    for bucket, runner in runners.items():
                        details = runner.get_input_details()
                        runner(**{n: np.zeros(details[n]["shape"], details[n]["dtype"]) for n in self.inputs})
        except EdgelmError:
            raise
        except Exception as exc:
            raise EdgelmError(f"{name} cannot load {model_file.name}: {str(exc).splitlines()[0][:200]}") from None
        self.version = getattr(interpreter, "__version__", None) or _dist_version(interpreter.__name__.split(".")[0])

    def runner(self, part: str):
        """A callable (arrays in the signature's order, batch first) -> the part's output."""
        runners = self.runners[part]

        def run(*arrays: np.ndarray) -> np.ndarray:
            runner = runners.get(arrays[0].shape[1])
            if runner is None:
                raise EdgelmError(f"no signature for length {arrays[0].shape[1]}; buckets are {sorted(runners)}")
            rows = []
            for i in range(arrays[0].shape[0]):
                feeds = {n: (a[i : i + 1].astype(np.float32) if a.dtype.kind == "f" else a[i : i + 1].astype(np.int32))
                         for n, a in zip(self.inputs, arrays)}
                rows.append(next(iter(runner(**feeds).values())))
            return np.concatenate(rows, axis=0)

        return run


class _TfliteBackend:
    """A plain (unrouted) TFLite bundle: one signature per bucket."""

    def __init__(self, model_file: Path, threads: int | None, config: dict, name: str = "litert"):
        inputs = [config["signature_inputs"]["input_ids"], config["signature_inputs"]["attention_mask"]]
        self._sigs = _TfliteSignatures(model_file, threads, {"model": config["signatures"]}, inputs, name)
        self.name, self.version = name, self._sigs.version
        self.buckets = sorted(self._sigs.runners["model"])
        self._run = self._sigs.runner("model")

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._run(ids, mask)


def _dist_version(module: str) -> str | None:
    import importlib.metadata

    name = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}.get(module, module)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def make_backend(name: str, bundle: Bundle, threads: int | None, routing: str | None = None):
    """The runtime `name` loaded with the bundle's model file; refuses a runtime for the wrong format.

    `routing` (routed bundles only): learned (default), dense, or one expert's name for every input.
    """
    if name not in BACKENDS:
        raise EdgelmError(f"unknown runtime {name!r}; use one of {', '.join(BACKENDS)}")
    target = bundle.target
    if name not in RUNS.get(target, ()):
        raise EdgelmError(f"{name} does not run {target} bundles; use {' or '.join(RUNS.get(target, ('?',)))}")
    if "routed" in bundle.config:
        from edgelm.runtime.routed import RoutedBackend

        return RoutedBackend(bundle, threads, name, routing or "learned")
    if routing is not None:
        raise EdgelmError(f"{bundle.path} is not a routed bundle; --routing applies to routed bundles only")
    model_file = bundle.path / bundle.config["model_file"]
    if target == "onnx":
        return _OnnxBackend(model_file, threads)
    return _TfliteBackend(model_file, threads, bundle.config, name)


def pad_to_bucket(ids: np.ndarray, mask: np.ndarray, buckets: list[int] | None,
                  pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad rows with <pad> (mask 0) to the smallest bucket that holds them; no buckets: unchanged."""
    if not buckets:
        return ids, mask
    width = next(b for b in sorted(buckets) if b >= ids.shape[1])
    grow = ((0, 0), (0, width - ids.shape[1]))
    return np.pad(ids, grow, constant_values=pad_id), np.pad(mask, grow, constant_values=0)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def compare_outputs(task: str, got: np.ndarray, want: np.ndarray) -> dict:
    """How far runtime outputs are from the reference: cosine for embeddings, labels + logits otherwise."""
    got, want = np.asarray(got, dtype=np.float32), np.asarray(want, dtype=np.float32)
    if got.shape != want.shape:
        return {"shape_ok": False, "got_shape": list(got.shape), "want_shape": list(want.shape)}
    report = {"shape_ok": True, "min_cosine": float(cosine_rows(got, want).min())}
    if task == "classification":
        report["label_agreement"] = float(np.mean(got.argmax(1) == want.argmax(1)))
        report["max_logit_diff"] = float(np.abs(got - want).max())
    return report


def routing_agreement(got, want) -> float:
    """Share of inputs whose set of chosen experts is identical."""
    got, want = np.asarray(got, dtype=bool), np.asarray(want, dtype=bool)
    return float((got == want).all(1).mean()) if got.shape == want.shape else 0.0


def parity_failures(report: dict, thresholds: dict) -> list[str]:
    """The thresholds a comparison misses, each with by how much."""
    if not report.get("shape_ok"):
        return [f"output shape {report['got_shape']} != {report['want_shape']}"]
    misses = []
    if report["min_cosine"] < thresholds["min_cosine"]:
        misses.append(f"min cosine {report['min_cosine']:.5f} < {thresholds['min_cosine']} "
                      f"(short by {thresholds['min_cosine'] - report['min_cosine']:.5f})")
    if "routing_agreement" in report and report["routing_agreement"] < thresholds.get("routing_agreement", 0):
        misses.append(f"the router chose other experts for {1 - report['routing_agreement']:.0%} of the inputs "
                      f"(allowed: {1 - thresholds['routing_agreement']:.0%})")
    if "label_agreement" in report and report["label_agreement"] < thresholds.get("label_agreement", 0):
        misses.append(f"label agreement {report['label_agreement']:.3f} < {thresholds['label_agreement']}")
    return misses


class Model:
    """A loaded bundle, ready to embed or classify text."""

    def __init__(self, bundle: Bundle, backend, tokenizer, *, strict: bool = False):
        self.bundle, self.backend, self.tokenizer, self.strict = bundle, backend, tokenizer, strict
        cfg = bundle.config
        self.task, self.prefix = cfg["task"], cfg.get("prefix", "")
        self.buckets = sorted(cfg.get("buckets") or [])
        self.max_length = self.buckets[-1] if self.buckets else cfg["max_length"]
        self.labels = cfg.get("labels")

    @classmethod
    def load(cls, path: str | Path, *, backend: str | None = None, threads: int | None = None,
             strict: bool = False, check_parity: bool = True, routing: str | None = None) -> Model:
        """Open, verify (sha256) and parity-check a bundle (a routed one: with its learned routing,
        then switched to `routing` when given)."""
        from tokenizers import Tokenizer

        bundle = Bundle.open(path)
        if bundle.target not in RUNS:
            raise EdgelmError(f"{bundle.path} is a {bundle.target!r} bundle, which this edgelm cannot run")
        runner = make_backend(backend or RUNS[bundle.target][0], bundle, threads, routing)
        tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
        tokenizer.no_padding()  # padding and truncation are ours: per bucket, with a warning
        tokenizer.no_truncation()
        model = cls(bundle, runner, tokenizer, strict=strict)
        if check_parity:
            model.check_parity()
        return model

    def check_parity(self) -> dict:
        """Replay the parity record; raise ParityError when outputs disagree."""
        record = self.bundle.manifest["parity"]
        forced = getattr(self.backend, "routing", None)  # routed bundles: the record holds learned routing
        if forced:
            self.backend.routing = "learned"
        try:
            got = self._run(record["texts"], strict=False)
            report = compare_outputs(self.task, got, np.array(record["outputs"]))
            if "chosen" in record:  # routed bundles: did the device pick the experts training picked?
                report["routing_agreement"] = routing_agreement(self.backend.last_chosen, record["chosen"])
            misses = parity_failures(report, record["thresholds"])
            # ... and every expert alone, including those the router did not pick for these texts
            for name, want in (record.get("expert_outputs") or {}).items():
                self.backend.routing = name
                alone = compare_outputs(self.task, self._run(record["texts"][: len(want)], strict=False), np.array(want))
                report.setdefault("expert_min_cosine", {})[name] = alone.get("min_cosine")
                misses += [f"expert {name}: {m}" for m in parity_failures(alone, record["thresholds"])]
        finally:
            if forced:
                self.backend.routing = forced
                self.backend.reset_counts()
        if misses:
            raise ParityError(f"{self.backend.name} disagrees with the source model on this bundle: "
                              + "; ".join(misses) + ". Refusing to run it.")
        return report

    def encode(self, texts: list[str], *, strict: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask (int64), padded to the longest text or to its bucket."""
        strict = self.strict if strict is None else strict
        if not texts:
            raise EdgelmError("no text given")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise EdgelmError("empty text: give at least one non-blank sentence")
            if any(0xD800 <= ord(c) <= 0xDFFF for c in t):
                raise EdgelmError("input is not valid UTF-8")
        encs = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        too_long = [i for i, e in enumerate(encs) if len(e.ids) > self.max_length]
        if too_long:
            if strict:
                raise EdgelmError(f"text {too_long[0] + 1} has {len(encs[too_long[0]].ids)} tokens, more than the "
                                  f"largest bucket ({self.max_length}); shorten it or drop --strict to truncate")
            warnings.warn(f"{len(too_long)} text(s) longer than {self.max_length} tokens were truncated", stacklevel=2)
        rows = [e.ids if len(e.ids) <= self.max_length else e.ids[: self.max_length - 1] + e.ids[-1:] for e in encs]
        width = max(len(r) for r in rows)
        pad = self.bundle.config.get("pad_id", 1)
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return self.encode_ids(ids, mask)

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Already-tokenized rows padded to the bundle's bucket (fixed-shape runtimes); others as they are."""
        if ids.shape[1] > self.max_length:
            raise EdgelmError(f"{ids.shape[1]} tokens is more than this bundle's largest bucket ({self.max_length})")
        return pad_to_bucket(ids, mask, self.buckets, self.bundle.config.get("pad_id", 1))

    def _run(self, texts: list[str], strict: bool | None = None) -> np.ndarray:
        ids, mask = self.encode(texts, strict=strict)
        return np.asarray(self.backend(ids, mask))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings (as the source model's recipe makes them)."""
        if self.task != "embedding":
            raise EdgelmError(f"this bundle is a {self.task} model; use predict()")
        return self._run(list(texts))

    def predict(self, texts: list[str]) -> list[dict]:
        """Label and class probabilities per text."""
        if self.task != "classification":
            raise EdgelmError("this bundle is a sentence-embedding model; use embed()")
        logits = self._run(list(texts))
        z = np.exp(logits - logits.max(1, keepdims=True))
        probs = z / z.sum(1, keepdims=True)
        return [{"label": self.labels[int(p.argmax())], "score": float(p.max()),
                 "probabilities": dict(zip(self.labels, map(float, p)))} for p in probs]

