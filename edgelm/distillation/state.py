"""Training checkpoints: model + optimizer in safetensors, step and config in JSON, written atomically.

Nothing is pickled: AdamW's state is flattened into named tensors and its param groups into JSON.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import torch
from safetensors.torch import save, save_file

from edgelm.atomic import atomic_dir, atomic_write_bytes
from edgelm.tensorfile import read_tensors


def cpu_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of `model`'s state dict on the CPU, contiguous: what safetensors writes."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write `tensors` as safetensors through a temporary file and a rename: a kill leaves the old file or the new."""
    atomic_write_bytes(path, save(tensors))


def rng_state(device: torch.device) -> dict:
    """torch's CPU (and CUDA) random state as JSON, for a checkpoint of a model trained with dropout."""
    rng = {"cpu": torch.get_rng_state().tolist()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device).tolist()
    return rng


def restore_rng(rng: dict, device: torch.device) -> None:
    """Undo `rng_state`: the resumed run draws the dropout masks the uninterrupted one would have."""
    torch.set_rng_state(torch.tensor(rng["cpu"], dtype=torch.uint8))
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(torch.tensor(rng["cuda"], dtype=torch.uint8), device)


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Replace `folder` with a checkpoint of `model`, `optimizer` and `state` (JSON-able)."""
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in opt["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                value = value.detach().cpu()
                tensors[f"{pid}.{key}"] = value.reshape(-1).contiguous() if value.dim() == 0 else value.contiguous()
                if value.dim() == 0:
                    scalars[f"{pid}.{key}"] = True
            else:
                scalars[f"{pid}.{key}"] = value
    try:
        with atomic_dir(folder, replace=True) as tmp:
            save_file(cpu_weights(model), tmp / "model.safetensors")
            save_file(tensors, tmp / "optimizer.safetensors")
            (tmp / "state.json").write_text(json.dumps(
                {"state": state, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}, indent=1))
    except Exception as exc:  # safetensors reports a full disk as its own error type
        if isinstance(exc, OSError) or "No space left" in str(exc) or "StorageFull" in str(exc):
            raise OSError(errno.ENOSPC, f"no space left writing {folder}") from exc
        raise


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore `model` and `optimizer` in place from `folder`; return the saved state dict."""
    meta = json.loads((folder / "state.json").read_text())
    model.load_state_dict(read_tensors(folder / "model.safetensors", "the training checkpoint")[1])
    tensors = read_tensors(folder / "optimizer.safetensors", "the training checkpoint's optimizer state")[1]
    state: dict = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        if meta["optimizer"]["scalars"].get(key) is True:
            value = value.reshape(())
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["optimizer"]["scalars"].items():
        if value is not True:
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    return meta["state"]
