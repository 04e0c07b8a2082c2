"""The device runtimes behind one call shape: arrays in (ids + mask, or hidden states + mask), the graph's output out.

`OnnxBackend` (onnxruntime) runs an ONNX graph at any length; `TfliteSignatures` opens a .tflite file
of fixed-length signatures with LiteRT or the legacy tflite-runtime, and `TfliteBackend` is a plain
bundle's model on it. Every backend has `name` and `version`. No torch here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.quiet import quiet_native_output

BACKENDS = ("onnxruntime", "litert", "tflite-runtime")
# Which backends run which bundle target; the first is the default.
RUNS = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-runtime")}
# TFLite's kernel paths, fastest first: the default delegate (XNNPACK), the builtin kernels without it,
# and the reference kernels. A runtime is named `litert:builtin`; plain `litert` tries them in turn and
# keeps the first whose output passes the bundle's parity record.
KERNEL_PATHS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def split_runtime(name: str) -> tuple[str, str | None]:
    """`litert:builtin` -> ("litert", "builtin"); a plain name has no kernel path."""
    runtime, _, kernels = name.partition(":")
    if kernels and (runtime not in RUNS["tflite"] or kernels not in KERNEL_PATHS):
        raise EdgelmError(f"unknown runtime {name!r}: kernel paths ({', '.join(KERNEL_PATHS)}) apply to "
                          f"{' and '.join(RUNS['tflite'])}, as in litert:builtin")
    return runtime, kernels or None


class OnnxBackend:
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
        if os.environ.get("EDGELM_ORT_SPINNING") == "0":
            # Idle pool threads otherwise spin for a while after each call: right for one model on a
            # device, wrong when several runtimes take turns on the same cores (an interleaved bench).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


class TfliteSignatures:
    """LiteRT (ai-edge-litert) or the legacy tflite-runtime over a file of fixed-length signatures.

    `signatures[part][bucket]` names the signature of one part (the whole model, or a routed bundle's
    body and experts) at one length. Signatures take one row; a batch runs row by row.
    """

    def __init__(self, model_file: Path, threads: int | None, signatures: dict[str, dict], inputs: list[str],
                 name: str = "litert", kernels: str | None = None):
        interpreter = _interpreter_module(name)
        self.name, self.inputs, self.kernels = name, inputs, kernels or "xnnpack"
        options = {}
        if kernels is not None and kernels != "xnnpack":
            options["experimental_op_resolver_type"] = getattr(interpreter.OpResolverType, KERNEL_PATHS[kernels])
        try:
            # The interpreter logs its delegate to fd 2 on the first call of each signature: make those here.
            with quiet_native_output():
                self.interpreter = interpreter.Interpreter(str(model_file), num_threads=threads or None, **options)
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


class TfliteBackend:
    """A plain (unrouted) TFLite bundle: one signature per bucket."""

    def __init__(self, model_file: Path, threads: int | None, config: dict, name: str = "litert",
                 kernels: str | None = None):
        inputs = [config["signature_inputs"]["input_ids"], config["signature_inputs"]["attention_mask"]]
        self._sigs = TfliteSignatures(model_file, threads, {"model": config["signatures"]}, inputs, name, kernels)
        self.name, self.version, self.kernels = name, self._sigs.version, self._sigs.kernels
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
