"""`edgelm route train`'s settings: one frozen dataclass, checked before anything loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgelm.errors import EdgelmError
from edgelm.kernels.routing import check_options
from edgelm.routing.format import expert_file

GENERAL = "general"
GROUPINGS = ("languages", "topics")


@dataclass(frozen=True)
class RouteConfig:
    domains: tuple[str, ...]  # one expert each: languages of the body, or SIB-200 topics
    source: str = "eng_Latn"
    grouping: str = "languages"  # what a domain is: a language, or a SIB-200 topic
    expert_layers: int = 1  # top layers of the student that become the experts
    general: bool = True  # keep the student's own top layers as a general expert
    always_general: bool = False  # run the general expert for every input (weight counts first toward tau)
    general_languages: tuple[str, ...] = ()  # more text the router learns to send to the general expert
    steps: int = 600  # expert distillation steps (alternating source / domain batches)
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.05  # share of the expert steps with linear warm-up, then linear decay to 0
    max_length: int = 128
    alpha_parallel: float = 1.0
    router_steps: int = 600
    router_lr: float = 3e-3
    balance: float = 0.01  # weight of the load-balancing term
    key_dim: int = 64
    temperature: float = 1.0
    tau: float = 0.9
    k_max: int = 2
    heldout: float = 0.1  # share of each group's text (a language's, a topic's) held out to score the router
    seed: int = 0
    device: str = "auto"  # where caching and expert training run: auto | cpu | cuda | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast for the forward passes)
    extra: dict = field(default_factory=dict)

    @property
    def experts(self) -> list[str]:
        return ([GENERAL] if self.general else []) + list(self.domains)

    def check(self) -> None:
        if len(self.domains) < 2:
            raise EdgelmError(f"routing needs at least two domains, got {len(self.domains)}: {', '.join(self.domains) or 'none'}")
        if len({expert_file(d) for d in self.domains} | {expert_file(GENERAL)}) != len(self.domains) + 1:
            raise EdgelmError("a domain is named twice (or as `general`, or two names differ only in punctuation)")
        if self.grouping not in GROUPINGS:
            raise EdgelmError(f"unknown domain grouping {self.grouping!r}; use {', '.join(GROUPINGS)}")
        if self.grouping == "languages" and self.source in self.domains:
            raise EdgelmError(f"{self.source} is the source language; the general expert covers it, not a domain")
        if (self.always_general or self.general_languages) and not self.general:
            raise EdgelmError("--always-general and --general-languages need the general expert (drop --no-general)")
        if self.grouping == "topics" and self.general_languages:
            raise EdgelmError("--general-languages is for language domains; with topics every text has a topic")
        if self.grouping == "topics" and self.general and not self.always_general:
            raise EdgelmError("with topic domains every text has a topic, so no text would teach the router the general "
                              "expert: pass --no-general, or --always-general to run it beside the topic experts")
        clash = set(self.general_languages) & ({self.source} | set(self.domains))
        if clash:
            raise EdgelmError(f"{sorted(clash)[0]} is a domain or the source, not a general language")
        for name in ("steps", "batch_size", "router_steps", "expert_layers", "key_dim"):
            if getattr(self, name) < 1:
                raise EdgelmError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.heldout < 0.5:
            raise EdgelmError("--heldout must be a share in (0, 0.5)")
        check_options(len(self.experts), self.tau, self.k_max, 0 if self.always_general else None)
        from edgelm.distillation.hardware import Hardware

        Hardware.resolve(self.device, self.precision)  # a device that is not there, fp16 on the CPU: refused now

    def identity(self) -> dict:
        """The settings that change the result (hardware does not)."""
        d = asdict(self)
        del d["device"], d["precision"]
        d["domains"], d["general_languages"] = list(d["domains"]), list(d["general_languages"])
        return d
