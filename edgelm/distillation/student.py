"""A student initialised from its teacher: same width, trimmed vocabulary, a subset of its layers."""

from __future__ import annotations

import copy
import math

from edgelm.errors import EdgelmError

LAYER_CHOICES = ("top-of-block", "bottom")


def select_layers(teacher_layers: int, student_layers: int, how: str = "top-of-block") -> list[int]:
    """Which teacher layers (0-based) the student copies.

    `top-of-block` is BiStil's rule: the top layer of each of `student_layers` equal blocks (12 -> 4
    gives 2, 5, 8, 11). `bottom` copies the first layers. An explicit comma-separated list is
    taken as given.
    """
    if student_layers < 1:
        raise EdgelmError(f"--layers must be at least 1, not {student_layers}")
    if student_layers > teacher_layers:
        raise EdgelmError(f"--layers {student_layers} is more than the teacher's {teacher_layers} layers")
    if how == "top-of-block":
        return [math.ceil((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]
    if how == "bottom":
        return list(range(student_layers))
    try:
        layers = [int(x) for x in how.split(",")]
    except ValueError:
        raise EdgelmError(f"--layer-selection must be {' or '.join(LAYER_CHOICES)} or a list like 0,1,2,3") from None
    if len(layers) != student_layers or sorted(set(layers)) != layers or not all(0 <= j < teacher_layers for j in layers):
        raise EdgelmError(f"layer list {how!r} must name {student_layers} distinct increasing teacher layers "
                          f"in 0..{teacher_layers - 1}")
    return layers


def layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer (0-based) whose output student layer i learns to reproduce: the top of block i."""
    return select_layers(teacher_layers, student_layers, "top-of-block")


def make_student(teacher, kept_ids, layers: list[int], *, extra_config: dict | None = None):
    """Build a BertModel student: the teacher's embedding rows `kept_ids`, its `layers`, no dropout.

    Dropout is 0 as in BiStil: the student imitates a deterministic teacher.
    """
    import torch
    from transformers import BertConfig, BertModel

    tcfg = teacher.config
    if tcfg.model_type != "bert":
        raise EdgelmError(f"students are built from BERT-architecture teachers, not {tcfg.model_type}")
    cfg_dict = tcfg.to_dict()
    cfg_dict.update(num_hidden_layers=len(layers), vocab_size=len(kept_ids),
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    meta = copy.deepcopy(getattr(tcfg, "edgelm", None) or {})
    meta.update(extra_config or {})
    cfg_dict["edgelm"] = meta
    for key in ("architectures", "_name_or_path", "transformers_version"):
        cfg_dict.pop(key, None)
    config = BertConfig(**cfg_dict)
    config._attn_implementation = getattr(tcfg, "_attn_implementation", None) or "eager"
    student = BertModel(config, add_pooling_layer=False)
    t_state = teacher.state_dict()
    new_state = {}
    ids = torch.as_tensor(kept_ids, dtype=torch.long)
    for name, value in student.state_dict().items():
        if name == "embeddings.word_embeddings.weight":
            new_state[name] = t_state[name].index_select(0, ids).clone()
        elif name.startswith("encoder.layer."):
            i = int(name.split(".")[2])
            rest = name.split(".", 3)[3]
            new_state[name] = t_state[f"encoder.layer.{layers[i]}.{rest}"].clone()
        elif name in t_state:
            new_state[name] = t_state[name].clone()
        else:
            new_state[name] = value
    student.load_state_dict(new_state)
    return student.eval()
