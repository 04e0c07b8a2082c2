"""Run an edge bundle: tokenize with `tokenizers`, pad, call the runtime. Imports no torch.

    from edgelm.runtime import Model
    m = Model.load("bundle/")          # verifies sha256s, then replays the parity record
    m.embed(["Habari ya asubuhi"])     # sentence-embedding bundles (an EmbeddingModel)
    m.predict(["..."])                 # classifier bundles (a ClassifierModel): label + probabilities
    m.tag(["..."]), m.entities(["..."])  # tagging bundles (a TaggingModel): a tag per word, entity spans

`Model.load` returns the class of the bundle's task, so what a bundle can do is its type: an
embedding bundle has `embed`, a classifier bundle `predict` (the `edgelm.protocols` contract).
On load every backend replays the bundle's parity record (real inputs with the source model's
outputs) and refuses to run when it disagrees: this is what catches a runtime that silently
returns zeros (tflite-runtime 2.14 on current int8 models).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.runtime.backends import BACKENDS, KERNEL_PATHS, RUNS, OnnxBackend, TfliteBackend, split_runtime
from edgelm.runtime.bundle import Bundle
from edgelm.runtime.parity import ParityError, compare_outputs, parity_failures, routing_agreement, token_rows
from edgelm.words import WordTagging


def make_backend(name: str, bundle: Bundle, threads: int | None, routing: str | None = None,
                 kernels: str | None = None):
    """The runtime `name` loaded with the bundle's model file; refuses a runtime for the wrong format.

    `routing` (routed bundles only): learned (default), dense, or one expert's name for every input.
    `kernels` (TFLite only): one of `KERNEL_PATHS` (default: the delegate, XNNPACK).
    """
    if name not in BACKENDS:
        raise EdgelmError(f"unknown runtime {name!r}; use one of {', '.join(BACKENDS)}")
    target = bundle.target
    if name not in RUNS.get(target, ()):
        raise EdgelmError(f"{name} does not run {target} bundles; use {' or '.join(RUNS.get(target, ('?',)))}")
    if "routed" in bundle.config:
        from edgelm.runtime.routed import RoutedBackend

        return RoutedBackend(bundle, threads, name, routing or "learned", kernels=kernels)
    if routing is not None:
        raise EdgelmError(f"{bundle.path} is not a routed bundle; --routing applies to routed bundles only")
    model_file = bundle.path / bundle.config["model_file"]
    if target == "onnx":
        return OnnxBackend(model_file, threads)
    return TfliteBackend(model_file, threads, bundle.config, name, kernels)


def pad_to_bucket(ids: np.ndarray, mask: np.ndarray, buckets: list[int] | None,
                  pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad rows with <pad> (mask 0) to the smallest bucket that holds them; no buckets: unchanged."""
    if not buckets:
        return ids, mask
    width = next(b for b in sorted(buckets) if b >= ids.shape[1])
    grow = ((0, 0), (0, width - ids.shape[1]))
    return np.pad(ids, grow, constant_values=pad_id), np.pad(mask, grow, constant_values=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities over the last axis."""
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def predictions(logits: np.ndarray, labels: list[str]) -> list[dict]:
    """Per row of class logits: the label, its probability and every class's probability."""
    probs = softmax(logits)
    return [{"label": labels[int(p.argmax())], "score": float(p.max()),
             "probabilities": dict(zip(labels, map(float, p)))} for p in probs]


class Model:
    """A loaded, verified bundle: tokenizes as exported and runs its graph on the device runtime."""

    task = ""

    def __init__(self, bundle: Bundle, backend, tokenizer, *, strict: bool = False):
        self.bundle, self.backend, self.tokenizer, self.strict = bundle, backend, tokenizer, strict
        cfg = bundle.config
        self.prefix = cfg.get("prefix", "")
        self.buckets = sorted(cfg.get("buckets") or [])
        self.max_length = self.buckets[-1] if self.buckets else cfg["max_length"]
        self.truncated = 0  # texts cut to the largest bucket since load, as the device cuts them
        self.kernel_fallback: dict[str, str] = {}  # TFLite kernel paths that failed the parity replay

    @property
    def path(self) -> Path:
        return self.bundle.path

    def __getattr__(self, name: str):
        # What a bundle can do is its type (so `isinstance(m, edgelm.Embedder)` holds for embedding bundles
        # only); asking one for another task's verb gets a sentence that says which it has.
        verbs = {"embed": "embed()", "predict": "predict()", "tag": "tag()", "tag_words": "tag()", "entities": "tag()"}
        if name in verbs:
            have = {"embedding": "embed()", "classification": "predict()", "tagging": "tag()"}.get(self.task, "?")
            article = "an" if self.task[:1] in ("a", "e", "i", "o", "u") else "a"
            raise AttributeError(f"this bundle is {article} {self.task} model: it has {have}, not {name}()")
        raise AttributeError(name)

    @classmethod
    def load(cls, path: str | Path, *, backend: str | None = None, threads: int | None = None,
             strict: bool = False, check_parity: bool = True, routing: str | None = None) -> Model:
        """Open, verify (sha256) and parity-check a bundle (a routed one: with its learned routing,
        then switched to `routing` when given). Returns an `EmbeddingModel`, a `ClassifierModel` or a
        `TaggingModel`.

        `backend` may name a TFLite kernel path (`litert:builtin`, `litert:reference`). Without one, a
        TFLite bundle whose parity replay fails on the default kernels (XNNPACK) is retried on the
        builtin, then the reference kernels; the first that passes runs it (`kernels`, and the failed
        paths in `kernel_fallback`). The parity record decides, not a list of CPU names."""
        from tokenizers import Tokenizer

        bundle = Bundle.open(path)
        if "specialists" in bundle.config:  # whole experts, each its own bundle: not one graph and tokenizer
            from edgelm.runtime.specialists import SpecialistsModel

            if cls not in (Model, EmbeddingModel):
                raise EdgelmError(f"{bundle.path} is an embedding bundle, not a {cls.task} one")
            return SpecialistsModel.open(
                bundle, lambda folder: Model.load(folder, backend=backend, threads=threads, check_parity=check_parity),
                check_parity=check_parity, routing=routing)
        if bundle.target not in RUNS:
            raise EdgelmError(f"{bundle.path} is a {bundle.target!r} bundle, which this edgelm cannot run")
        kind = _BY_TASK.get(bundle.config.get("task"))
        if kind is None:
            raise EdgelmError(f"{bundle.path} is a {bundle.config.get('task')!r} bundle, which this edgelm cannot run")
        if cls is not Model and not issubclass(kind, cls):
            raise EdgelmError(f"{bundle.path} is a {bundle.config['task']} bundle, not a {cls.task} one")
        name, kernels = split_runtime(backend or RUNS[bundle.target][0])
        tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
        tokenizer.no_padding()  # padding and truncation are ours: per bucket, with a warning
        tokenizer.no_truncation()
        paths = [kernels] if kernels or bundle.target != "tflite" or not check_parity else list(KERNEL_PATHS)
        failed: dict[str, str] = {}
        for path_name in paths:
            runner = make_backend(name, bundle, threads, routing, kernels=path_name)
            model = kind(bundle, runner, tokenizer, strict=strict)
            model.kernel_fallback = failed
            if not check_parity:
                return model
            try:
                model.check_parity()
            except ParityError as exc:
                failed[path_name or name] = str(exc)
                continue
            if failed:
                warnings.warn(f"{name} failed this bundle's parity check on its {', '.join(failed)} kernels; "
                              f"running it on the {path_name} kernels", stacklevel=2)
            return model
        if len(failed) == 1:
            raise ParityError(next(iter(failed.values())))
        raise ParityError(f"{name} disagrees with the source model on this bundle on every kernel path ("
                          + "; ".join(f"{k}: {v.split(': ', 1)[-1]}" for k, v in failed.items()) + "). Refusing to run it.")

    def check_parity(self) -> dict:
        """Replay the parity record; raise ParityError when outputs disagree."""
        record = self.bundle.manifest["parity"]
        forced = getattr(self.backend, "routing", None)  # routed bundles: the record holds learned routing
        if forced:
            self.backend.routing = "learned"
        truncated = self.truncated
        try:
            ids, mask = self.tokenize(record["texts"], strict=False)
            got = np.asarray(self.backend(ids, mask))
            if self.task == "tagging":  # the record holds each text's real tokens
                got, want = token_rows(self.task, [got], mask)[0], np.concatenate([np.asarray(r) for r in record["outputs"]])
            else:
                want = np.array(record["outputs"])
            report = compare_outputs(self.task, got, want)
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
            self.truncated = truncated
            if forced:
                self.backend.routing = forced
                self.backend.reset_counts()
        if misses:
            raise ParityError(f"{self.backend.name} disagrees with the source model on this bundle: "
                              + "; ".join(misses) + ". Refusing to run it.")
        return report

    def tokenize(self, texts: list[str], *, strict: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask (int64) as the bundle's graph takes them: padded to the longest text, or to its
        bucket; a text longer than the bundle takes is truncated (counted in `truncated`, with a warning)
        or, `strict`, refused."""
        strict = self.strict if strict is None else strict
        if not texts:
            raise EdgelmError("no text given")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise EdgelmError("empty text: give at least one non-blank sentence")
            try:
                t.encode("utf-8")  # in C: a lone surrogate cannot be encoded
            except UnicodeEncodeError:
                raise EdgelmError("input is not valid UTF-8") from None
        encs = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        too_long = [i for i, e in enumerate(encs) if len(e.ids) > self.max_length]
        if too_long:
            if strict:
                raise EdgelmError(f"text {too_long[0] + 1} has {len(encs[too_long[0]].ids)} tokens, more than the "
                                  f"largest bucket ({self.max_length}); shorten it or drop --strict to truncate")
            self.truncated += len(too_long)
            warnings.warn(f"{len(too_long)} text(s) longer than {self.max_length} tokens were truncated", stacklevel=2)
        return self.padded([e.ids if len(e.ids) <= self.max_length else e.ids[: self.max_length - 1] + e.ids[-1:]
                            for e in encs])

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the bundle's tokenizer makes of `texts` (a server's usage figure)."""
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(list(texts)))

    @property
    def backend_name(self) -> str:
        """What runs the graph (onnxruntime, litert, …)."""
        return self.backend.name

    @property
    def dimension(self) -> int | None:
        """The width of the model's hidden states (an embedding bundle's vector size)."""
        return (self.bundle.config.get("architecture") or {}).get("hidden")

    def padded(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Token id rows (int64) with their mask, padded to the longest row, or to its bucket."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.bundle.config.get("pad_id", 1), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return self.encode_ids(ids, mask)

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Already-tokenized rows padded to the bundle's bucket (fixed-shape runtimes); others as they are."""
        if ids.shape[1] > self.max_length:
            raise EdgelmError(f"{ids.shape[1]} tokens is more than this bundle's largest bucket ({self.max_length})")
        return pad_to_bucket(ids, mask, self.buckets, self.bundle.config.get("pad_id", 1))

    def _run(self, texts: list[str], strict: bool | None = None) -> np.ndarray:
        ids, mask = self.tokenize(texts, strict=strict)
        return np.asarray(self.backend(ids, mask))

    def describe(self) -> dict:
        """What an evaluation report says about the bundle: source, shape, quantization, runtime, truncation."""
        cfg, export = self.bundle.config, self.bundle.manifest.get("export", {})
        arch = cfg.get("architecture") or {}
        out = {"path": str(self.path), "kind": "bundle", "parameters": None, "layers": arch.get("layers"),
               "vocab_size": arch.get("vocab"), "source": export.get("source"),
               "recipe": {"pooling": cfg.get("pooling", "mean"), "normalize": bool(cfg.get("normalize", True)),
                          "prefix": self.prefix},
               "bundle": {k: export.get(k) for k in ("target", "quantize", "runtime")} | {"backend": self.backend.name}}
        if getattr(self.backend, "kernels", None):
            out["bundle"]["kernels"] = self.backend.kernels
        if self.kernel_fallback:
            out["bundle"]["kernel_fallback"] = self.kernel_fallback
        if self.truncated:
            out["truncated_texts"] = self.truncated
        if "routed" in cfg:
            out["routing"] = {"routing": self.backend.routing, "experts": self.backend.names,
                              "mean_experts": self.backend.mean_experts,
                              "sentences_per_expert": dict(zip(self.backend.names, self.backend.experts_run.tolist()))}
        return out


class EmbeddingModel(Model):
    """A sentence-embedding bundle."""

    task = "embedding"

    def embed(self, texts: list[str], *, batch_size: int = 32, progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        """Sentence embeddings (as the source model's recipe makes them), rows in the input's order,
        computed in length-sorted batches. `language` and `topic` are accepted for the `Embedder`
        contract; a bundle routes as it was exported."""
        texts = list(texts)
        if not texts:
            raise EdgelmError("no text given")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        bar = contextlib.nullcontext(lambda n: None)
        if progress:  # an evaluation: a progress bar (rich, imported only then); truncation is in its report
            from edgelm.progress import progress_bar

            bar = progress_bar(progress, len(texts), "sent")
        truncated = self.truncated
        with warnings.catch_warnings(), bar as advance:
            warnings.filterwarnings("ignore", message=".*were truncated")  # one warning for all batches, below
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                vecs = self._run([texts[i] for i in idx])
                if out is None:
                    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                advance(len(idx))
        if self.truncated > truncated and not progress:
            warnings.warn(f"{self.truncated - truncated} text(s) longer than {self.max_length} tokens were truncated",
                          stacklevel=2)
        return out


class ClassifierModel(Model):
    """A sentence-classification bundle."""

    task = "classification"

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.config.get("labels") or [])

    def logits(self, texts: list[str]) -> np.ndarray:
        return self._run(list(texts))

    def predict(self, texts: list[str]) -> list[dict]:
        """Label, its probability and every class's probability per text."""
        return predictions(self.logits(texts), self.labels)

    def describe(self) -> dict:
        return super().describe() | {"labels": self.labels}


class TaggingModel(WordTagging, Model):
    """A word-tagging bundle (named entities, parts of speech): text in, a tag per word out, with offsets."""

    task = "tagging"

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.config.get("labels") or [])

    @property
    def scheme(self) -> str:
        return self.bundle.config.get("scheme", "tags")

    def _word_probs(self, sentences: list[list[str]], batch_size: int = 32) -> list[list]:
        """Per sentence, per word: class probabilities at the word's first sub-word (None if truncated away)."""
        from edgelm.words import first_subwords

        head = self.prefix.split()
        out: list[list] = []
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start : start + batch_size]
            encs = self.tokenizer.encode_batch([head + words for words in chunk], is_pretokenized=True)
            rows, firsts = [], []
            for words, enc in zip(chunk, encs):
                ids, word_ids = list(enc.ids), list(enc.word_ids)
                if len(ids) > self.max_length:  # cut as `tokenize` cuts, the closing special token kept
                    self.truncated += 1
                    ids, word_ids = ids[: self.max_length - 1] + ids[-1:], word_ids[: self.max_length - 1] + [None]
                rows.append(ids)
                firsts.append(first_subwords(word_ids, len(head), len(words)))
            probs = softmax(np.asarray(self.backend(*self.padded(rows)), dtype=np.float32))
            out += [[probs[k, p] if p >= 0 else None for p in first] for k, first in enumerate(firsts)]
        return out

    def describe(self) -> dict:
        return super().describe() | {"labels": self.labels, "scheme": self.scheme}


_BY_TASK = {"embedding": EmbeddingModel, "classification": ClassifierModel, "tagging": TaggingModel}
