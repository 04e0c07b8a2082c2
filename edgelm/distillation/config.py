"""The distillation run's settings: one frozen dataclass, validated before any model loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgelm.errors import EdgelmError

PHASES = ("general", "task", "both")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = "e5-small"  # bundled teacher name, checkpoint folder or hub id
    source: str = "eng_Latn"  # language with task data
    target: str = "swh_Latn"  # language(s) the student will run in; "swh_Latn,hin_Deva" makes a multi-target student
    phase: str = "both"  # general | task | both
    # vocabulary
    vocab_threshold: float = 1e-6  # keep a piece whose relative frequency in some language reaches this
    vocab_min_count: int = 1  # ... and that occurs at least this often there
    # student
    layers: int = 4  # student depth (same width as the teacher)
    layer_reduction: int | None = None  # alternative to `layers`: teacher depth // this
    layer_selection: str = "top-of-block"  # teacher layers copied: top-of-block (BiStil) | bottom | "0,1,2,3"
    # phase 1: general bilingual distillation
    steps: int = 2000  # optimizer steps, alternating source and target batches
    batch_size: int = 16  # sentences per (monolingual) batch
    max_length: int = 128  # tokens per sentence, special tokens included
    lr: float = 1e-4  # AdamW peak learning rate
    warmup: float = 0.05  # fraction of steps with linear warm-up, then linear decay to 0
    weight_decay: float = 0.0
    alpha_hidden: float = 1.0  # hidden-state MSE over the layer map
    alpha_attn: float = 1.0  # attention-probability MSE over the layer map
    alpha_embed: float = 1.0  # 1 - cosine of the mean-pooled sentence embedding
    alpha_parallel: float = 1.0  # 1 - cosine of a target sentence's student embedding to the teacher's
    #                              embedding of its source translation (SIB-200 train/dev are parallel)
    alpha_contrastive: float = 0.0  # InfoNCE: a sentence's student embedding must pick the teacher's
    #                                 embedding of its source-language version among the anchors embedded
    #                                 so far (a memory bank that grows as training reads)
    contrastive_temperature: float = 0.05
    anchor_share: float = 0.0  # fraction of each target batch drawn from sentences with a translation anchor
    #                            (bitext or SIB-200's parallel rows); 0: batches take sentences as they come
    source_share: float | None = None  # fraction of phase-1 steps on the source language; None: every
    #                                    language in turn (a 15-target student sees its source 1 step in 16)
    checkpoint_every: int = 100  # steps between checkpoints (a kill loses at most this many)
    log_every: int = 10
    # phase 2: task distillation with lottery-ticket sparse fine-tuning
    task: str = "sib200"
    teacher_epochs: int = 4  # fine-tuning epochs of the task teacher (when none is given)
    teacher_lr: float = 5e-5
    task_teacher: str | None = None  # an already task-tuned teacher checkpoint
    full_epochs: int = 4  # LT-SFT phase A: all parameters
    sparse_epochs: int = 6  # LT-SFT phase B: only the selected ones
    task_lr: float = 1e-4
    task_batch_size: int = 16
    density: float = 0.08  # fraction of body parameters kept by LT-SFT (BiStil: 0.08)
    nnz: int | None = None  # ... or an exact count, overriding density
    temperature: float = 2.0
    alpha_kd: float = 1.0
    alpha_gold: float = 0.0  # gold-label cross-entropy (BiStil: 0)
    alpha_task_hidden: float = 1.0
    alpha_task_attn: float = 1.0
    task_target_share: float = 0.0  # fraction of phase-2 batches of unlabelled target-language text (phase 1's),
    #                                 labelled only by the task teacher's predictions (0: BiStil, source rows only)
    seed: int = 0
    # hardware: where and how the steps run (not part of the run's identity: a run may resume elsewhere)
    device: str = "auto"  # auto | cpu | cuda | mps (auto: CUDA, then MPS, then the CPU)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a loss scaler, GPU only)
    grad_accum: int = 1  # micro-batches per global batch on each rank (the batch stays --batch-size)
    teacher_cache: bool = False  # keep the teacher's targets (both phases) in RAM after a sentence's first pass
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.phase not in PHASES:
            raise EdgelmError(f"--phase must be one of {', '.join(PHASES)}, not {self.phase!r}")
        if not all(self.targets):
            raise EdgelmError(f"--target {self.target!r} has an empty language name")
        if self.source in self.targets:
            raise EdgelmError(f"source and target are both {self.source}: a bilingual student needs two languages")
        if len(set(self.targets)) != len(self.targets):
            raise EdgelmError(f"--target {self.target} names a language twice")
        if self.device not in DEVICES:
            raise EdgelmError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.precision not in PRECISIONS:
            raise EdgelmError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        for name in ("steps", "batch_size", "max_length", "checkpoint_every", "layers", "task_batch_size",
                     "grad_accum"):
            if getattr(self, name) < 1:
                raise EdgelmError(f"--{name.replace('_', '-')} must be at least 1")
        if self.layer_reduction is not None and self.layer_reduction < 1:
            raise EdgelmError("--layer-reduction must be at least 1")
        if not 0 < self.density <= 1:
            raise EdgelmError(f"--density must be in (0, 1], not {self.density}")
        if not 0 <= self.anchor_share <= 1:
            raise EdgelmError(f"--anchor-share is a fraction of each batch, in [0, 1], not {self.anchor_share}")
        if self.source_share is not None and not 0 < self.source_share < 1:
            raise EdgelmError(f"--source-share is a fraction of the steps, in (0, 1), not {self.source_share}")
        if not 0 <= self.task_target_share < 1:
            raise EdgelmError(f"--task-target-share is a fraction of phase 2's batches, in [0, 1), "
                              f"not {self.task_target_share}")
        if not 0 <= self.warmup < 1:
            raise EdgelmError("--warmup is a fraction of the steps, in [0, 1)")
        if self.max_length > 512:
            raise EdgelmError("--max-length cannot exceed the teacher's 512 positions")

    @property
    def targets(self) -> tuple[str, ...]:
        """The target languages: one for a bilingual student, several for a shared (routing) body."""
        return tuple(t.strip() for t in self.target.split(","))

    @property
    def languages(self) -> list[str]:
        return [self.source, *self.targets]

    def to_dict(self) -> dict:
        return asdict(self)

    # Settings that change the phase-1 result: resuming must agree on all of them.
    def identity(self) -> dict:
        d = self.to_dict()
        return {k: d[k] for k in _GENERAL_FIELDS if not (k in _LATER_FIELDS and d[k] == _LATER_FIELDS[k])}

    # Settings that change the phase-2 result (on top of the phase-1 student).
    def task_identity(self) -> dict:
        d = self.to_dict()
        return {k: d[k] for k in _TASK_FIELDS if not (k in _LATER_FIELDS and d[k] == _LATER_FIELDS[k])}


_GENERAL_FIELDS = ("teacher", "source", "target", "vocab_threshold", "vocab_min_count", "layers", "layer_reduction", "layer_selection",
                   "steps", "batch_size", "max_length", "lr", "warmup", "weight_decay", "alpha_hidden", "alpha_attn",
                   "alpha_embed", "alpha_parallel", "alpha_contrastive",
                   "contrastive_temperature", "seed", "anchor_share", "source_share")
# Fields added after runs were made: at their default they stay out of the identity, so those
# runs still resume.
_LATER_FIELDS = {"anchor_share": 0.0, "source_share": None, "task_target_share": 0.0}
_TASK_FIELDS = ("task", "teacher_epochs", "teacher_lr", "task_teacher", "full_epochs", "sparse_epochs", "task_lr",
                "task_batch_size", "density", "nnz", "temperature", "alpha_kd", "alpha_gold", "alpha_task_hidden",
                "alpha_task_attn", "task_target_share", "seed")
