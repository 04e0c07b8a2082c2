"""Routed bundles on the device: run the body, route in numpy, run only the chosen experts.

The router is a few thousand numbers (a query projection and one prototype per expert), so it runs
as the same numpy kernels training used (`kernels.routing.route_numpy`):
the device picks exactly the experts training would. Each expert is its own graph (ONNX: a file
per part; TFLite: a signature per part and bucket), so an expert that no input chose costs nothing.
"""

from __future__ import annotations

import json

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.runtime.backends import OnnxBackend, TfliteSignatures
from edgelm.runtime.bundle import Bundle
from edgelm.tensorfile import read_tensors

DEVICE_ROUTINGS = ("learned", "dense")


def load_router(path) -> tuple:
    """(RouterWeights, expert names) from a router.safetensors, without torch."""
    from edgelm.kernels.routing import RouterWeights

    meta, w = read_tensors(path, "the router", framework="np")
    return RouterWeights(w["query.weight"], w["query.bias"], w["prototypes"], float(meta["temperature"])), \
        json.loads(meta["experts"])


class RoutedBackend:
    """(ids, mask) -> mixed sentence vectors; `last_chosen` holds the experts each row ran."""

    def __init__(self, bundle: Bundle, threads: int | None, name: str, routing: str = "learned",
                 tau: float | None = None, k_max: int | None = None, kernels: str | None = None):
        cfg = bundle.config["routed"]
        self.names = list(cfg["experts"])
        self.router, router_names = load_router(bundle.path / cfg["router_file"])
        if router_names != self.names:
            raise EdgelmError(f"the router in {bundle.path} routes to {router_names}, the bundle has {self.names}")
        self.general = cfg.get("general") if cfg.get("always_general") else None
        self.tau = cfg["tau"] if tau is None else tau
        self.k_max = cfg["k_max"] if k_max is None else k_max
        self.normalize = bool(bundle.config.get("normalize", True))
        self.name = name
        if routing not in DEVICE_ROUTINGS and routing not in self.names:
            raise EdgelmError(f"unknown routing {routing!r}; use {', '.join(DEVICE_ROUTINGS)} or one of {', '.join(self.names)}")
        self.routing = routing
        if bundle.target == "onnx":
            self.body = OnnxBackend(bundle.path / cfg["files"]["body"], threads)
            self.experts = [OnnxBackend(bundle.path / cfg["files"][n], threads) for n in self.names]
            self.version = self.body.version
        else:
            parts = TfliteSignatures(bundle.path / bundle.config["model_file"], threads, cfg["signatures"],
                                      list(bundle.config["signature_inputs"].values()), name, kernels)
            self.kernels = parts.kernels
            self.body = parts.runner("body")
            self.experts = [parts.runner(n) for n in self.names]
            self.version = parts.version
        self.last_chosen: np.ndarray | None = None
        self.experts_run = np.zeros(len(self.names), dtype=np.int64)
        self.rows = 0

    def choose(self, hidden: np.ndarray, mask: np.ndarray, *, tau: float | None = None,
               k_max: int | None = None) -> dict[str, np.ndarray]:
        """The router's weights, and the experts to run with their mixing weights under this routing
        (`tau` / `k_max` override the bundle's for this call)."""
        from edgelm.kernels.routing import check_options, route_numpy

        tau, k_max = self.tau if tau is None else tau, self.k_max if k_max is None else k_max
        check_options(len(self.names), tau, k_max, self.general)
        out = route_numpy(self.router, hidden, mask, tau, k_max, self.general)
        if self.routing == "dense":
            return out | {"chosen": np.ones_like(out["chosen"]), "mixing": out["weights"]}
        if self.routing != "learned":
            chosen = np.zeros_like(out["chosen"])
            chosen[:, self.names.index(self.routing)] = True
            return out | {"chosen": chosen, "mixing": chosen.astype(np.float32)}
        return out

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from edgelm.kernels.routing import mix

        hidden = np.asarray(self.body(ids, mask), dtype=np.float32)
        pick = self.choose(hidden, mask)
        chosen = pick["chosen"]
        out = mix(chosen, pick["mixing"], lambda e, rows: np.asarray(self.experts[e](hidden[rows], mask[rows]), np.float32),
                  self.normalize)
        self.last_chosen = chosen
        self.experts_run += chosen.sum(0)
        self.rows += chosen.shape[0]
        return out

    def reset_counts(self) -> None:
        self.experts_run[:] = 0
        self.rows = 0

    @property
    def mean_experts(self) -> float:
        return float(self.experts_run.sum() / max(1, self.rows))
