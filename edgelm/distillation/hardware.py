"""Where training runs: the device, the numeric precision, and the torch.distributed world.

One process on the CPU in fp32 is the default and trains exactly as before. Under `torchrun`
(RANK / WORLD_SIZE / LOCAL_RANK in the environment) every rank builds the same data and model, computes
its share of each global batch, DDP averages the gradients (gloo on CPU, NCCL on CUDA), and rank 0
alone writes files. Checks run before any model loads, so a wrong flag is one line, not a traceback.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

from edgelm.distillation.config import DEVICES, PRECISIONS
from edgelm.errors import EdgelmError
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device that is not there is an error."""
    if name not in DEVICES:
        raise EdgelmError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise EdgelmError(f"--device cuda, but torch {torch.__version__} ({build}) sees no CUDA device; "
                              "use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not has_mps:
        raise EdgelmError("--device mps, but this torch sees no Apple GPU; use --device cpu or auto")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """Mixed precision: autocast to `name` for the forward passes, a loss scaler for fp16."""

    name: str
    device: torch.device

    def __post_init__(self):
        if self.name not in PRECISIONS:
            raise EdgelmError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.name!r}")
        if self.name == "fp16" and self.device.type == "cpu":
            raise EdgelmError("--precision fp16 needs a GPU: CPU float16 kernels are slow and a loss scaler is "
                              "no use there; use bf16 or fp32 on the CPU")
        if self.name == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise EdgelmError(f"--precision bf16: {torch.cuda.get_device_name(self.device)} has no bfloat16; "
                              "use fp16 or fp32")

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.name]

    def autocast(self):
        """The forward-pass context: autocast below fp32, nothing at fp32."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler that is active for fp16 only (bf16 has fp32's range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks torchrun started (one rank when not under torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        try:
            rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
            local = int(os.environ.get("LOCAL_RANK", rank))
        except ValueError:
            raise EdgelmError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (torchrun sets them)") from None
        if size < 1 or not 0 <= rank < size:
            raise EdgelmError(f"RANK {rank} is not in a world of size {size}")
        return cls(rank, size, local)

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    def start(self, device: torch.device, timeout_minutes: float = 30) -> None:
        """Join the process group (gloo on CPU, NCCL on CUDA); nothing to do in one process."""
        import torch.distributed as dist

        if self.size == 1 or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))

    def stop(self) -> None:
        """Leave the process group (after the last collective call)."""
        import torch.distributed as dist

        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.size > 1 and dist.is_initialized():
            dist.barrier()

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of `values` over the ranks (the tensor itself in one process)."""
        import torch.distributed as dist

        if self.size > 1 and dist.is_initialized():
            values = values.clone()
            dist.all_reduce(values)
        return values

    def wrap(self, model: torch.nn.Module, device: torch.device, *, unused: bool = False) -> torch.nn.Module:
        """DDP around `model` when there are several ranks (`unused`: some parameters may get no gradient)."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       find_unused_parameters=unused)

    @property
    def local_size(self) -> int:
        """Ranks on this machine (torchrun's LOCAL_WORLD_SIZE)."""
        return int(os.environ.get("LOCAL_WORLD_SIZE", self.size))


@dataclass(frozen=True)
class Hardware:
    """Device, precision and world, resolved and checked once per run."""

    device: torch.device
    precision: Precision
    world: World
    grad_accum: int = 1

    @classmethod
    def resolve(cls, device: str = "cpu", precision: str = "fp32", grad_accum: int = 1) -> Hardware:
        if grad_accum < 1:
            raise EdgelmError("--grad-accum must be at least 1")
        world = World.from_env()
        dev = resolve_device(device, world.local_rank)
        if dev.type == "cuda":
            if world.local_size > torch.cuda.device_count():
                raise EdgelmError(f"{world.local_size} ranks on this machine but {torch.cuda.device_count()} GPU(s): "
                                  "start at most one rank per GPU (torchrun --nproc-per-node)")
            torch.cuda.set_device(dev)  # before anything touches CUDA, so each rank's context is on its own GPU
        return cls(dev, Precision(precision, dev), world, grad_accum)

    @property
    def parts(self) -> int:
        """How many pieces each global batch is cut into: one per rank and accumulation step."""
        return self.world.size * self.grad_accum

    def check_batch(self, batch_size: int) -> str | None:
        """Refuse a batch too small to give every part a sentence; describe an uneven split."""
        if batch_size < self.parts:
            raise EdgelmError(f"a global batch of {batch_size} cannot be cut into {self.world.size} rank(s) x "
                              f"{self.grad_accum} accumulation step(s); raise --batch-size to at least {self.parts}")
        sizes = [len(p) for p in np.array_split(np.arange(batch_size), self.parts)]
        if len(set(sizes)) > 1:
            return (f"global batch {batch_size} over {self.parts} parts is uneven ({'/'.join(map(str, sizes))} "
                    "sentences); the loss is normalised over the whole batch, so training is unchanged")
        return None

    def my_parts(self, indices: np.ndarray) -> list[np.ndarray]:
        """This rank's micro-batches of one global batch: rank r takes parts r, r + size, r + 2*size, ..."""
        parts = np.array_split(np.asarray(indices), self.parts)
        return parts[self.world.rank :: self.world.size]

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": self.precision.name, "world_size": self.world.size,
                "grad_accum": self.grad_accum, "torch": torch.__version__}
