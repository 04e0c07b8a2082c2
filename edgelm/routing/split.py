"""Student surgery: a finished multi-target student becomes a frozen shared body (its lower layers) and the
top layers every expert starts from."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from edgelm.errors import EdgelmError
from edgelm.routing.model import ExpertStack


def open_student(student: Path) -> tuple[Path, Path, dict]:
    """(run folder, phase-1 student folder, run.json) for a distillation run or its `general/` folder."""
    student = Path(student)
    run = student.parent if (student / "config.json").is_file() and (student.parent / "run.json").is_file() else student
    if not (run / "run.json").is_file() or not (run / "general" / "model.safetensors").is_file():
        raise EdgelmError(f"{student} is not a finished `edgelm distill` run (needs run.json and general/)")
    if not (run / "vocab.json").is_file():
        raise EdgelmError(f"{run} has no vocab.json: cannot map its tokens to the teacher's")
    return run, run / "general", json.loads((run / "run.json").read_text())


def split_student(student, expert_layers: int):
    """(body, top layers): the student's lower layers as a BertModel, its top layers as an ExpertStack."""
    from transformers import BertModel

    depth = student.config.num_hidden_layers
    if not 1 <= expert_layers < depth:
        raise EdgelmError(f"--expert-layers must leave the body at least one layer: the student has {depth}")
    cfg = copy.deepcopy(student.config)
    cfg.num_hidden_layers = depth - expert_layers
    body = BertModel(cfg, add_pooling_layer=False)
    body.load_state_dict({k: v for k, v in student.state_dict().items()
                          if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < cfg.num_hidden_layers})
    top = ExpertStack(student.config, expert_layers)
    top_state = {}
    for key, value in student.state_dict().items():
        if key.startswith("encoder.layer."):
            i, rest = int(key.split(".")[2]), key.split(".", 3)[3]
            if i >= cfg.num_hidden_layers:
                top_state[f"{i - cfg.num_hidden_layers}.{rest}"] = value
    top.layers.load_state_dict(top_state)
    return body.eval(), top.eval()
