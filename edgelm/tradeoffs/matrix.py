"""The score matrix the trade-off metrics read: models × domains, scores in [0, 1].

It also says which model is the generalist base, which domain each specialist targets, and
optionally a compression intensity per model (bits per weight, parameter ratio, layers kept).
Missing cells are allowed (they make the metrics that need them NaN, with a reason); NaN values,
scores outside [0, 1] and rows of the wrong length are refused.

Files: JSON
    {"domains": ["swh_Latn", ...], "scores": {"base": [0.70, ...], "swh": [0.73, ...]},
     "base": "base", "targets": {"swh": "swh_Latn"}, "intensity": {"base": 32, "swh": 8}}
(a score list may be a {domain: score} object instead; null = missing), or TSV/CSV: a header
`model<TAB>domain…`, then one row per model (an empty cell = missing); base, targets and
intensity then come from the command line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError, did_you_mean


@dataclass
class ScoreMatrix:
    models: list[str]
    domains: list[str]
    scores: np.ndarray  # float, NaN = missing
    base: str | None = None
    targets: dict[str, str] = field(default_factory=dict)  # specialist -> its domain
    intensity: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a matrix that cannot be scored: shapes, ranges, names that are not rows or columns."""
        self.scores = np.asarray(self.scores, dtype=float)
        if len(set(self.models)) != len(self.models) or len(set(self.domains)) != len(self.domains):
            raise EdgelmError("model and domain names must be unique")
        if self.scores.shape != (len(self.models), len(self.domains)):
            raise EdgelmError(f"the score matrix is {self.scores.shape[0]}×{self.scores.shape[1] if self.scores.ndim > 1 else '?'}"
                              f" but names {len(self.models)} models × {len(self.domains)} domains")
        finite = self.scores[~np.isnan(self.scores)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            bad = finite[(finite < 0) | (finite > 1)][0]
            raise EdgelmError(f"score {bad} is outside [0, 1]; give accuracies / F1 as fractions")
        if self.base is not None:
            self.row(self.base)
        for model, domain in self.targets.items():
            self.row(model)
            self.col(domain)
        for model, value in self.intensity.items():
            self.row(model)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EdgelmError(f"compression intensity of {model} must be a number, not {value!r}")

    def row(self, model: str) -> int:
        if model not in self.models:
            raise EdgelmError(f"unknown model {model!r}{did_you_mean(model, self.models)}")
        return self.models.index(model)

    def col(self, domain: str) -> int:
        if domain not in self.domains:
            raise EdgelmError(f"unknown domain {domain!r}{did_you_mean(domain, self.domains)}")
        return self.domains.index(domain)

    def score(self, model: str, domain: str) -> float:
        return float(self.scores[self.row(model), self.col(domain)])

    def to_dict(self) -> dict:
        return {"models": self.models, "domains": self.domains,
                "scores": [[None if math.isnan(v) else float(v) for v in row] for row in self.scores],
                "base": self.base, "targets": self.targets, "intensity": self.intensity}


def _cell(value, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):
        raise EdgelmError(f"score at {where} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EdgelmError(f"score at {where} is {value!r}, not a number") from None
    if math.isnan(number):
        raise EdgelmError(f"score at {where} is NaN; leave the cell empty (or null) for a missing score")
    return number


def from_json(data: dict) -> ScoreMatrix:
    """A ScoreMatrix from the JSON layout in the module docstring."""
    if not isinstance(data, dict) or "scores" not in data or "domains" not in data:
        raise EdgelmError("a score matrix JSON needs 'domains' and 'scores' (see `edgelm metrics --help`)")
    domains = [str(d) for d in data["domains"]]
    rows, models = [], []
    for model, values in data["scores"].items():
        if isinstance(values, dict):
            unknown = set(values) - set(domains)
            if unknown:
                raise EdgelmError(f"model {model} scores domain {sorted(unknown)[0]!r}, which is not in 'domains'")
            values = [values.get(d) for d in domains]
        if not isinstance(values, list) or len(values) != len(domains):
            raise EdgelmError(f"model {model} has {len(values) if isinstance(values, list) else '?'} scores "
                              f"for {len(domains)} domains")
        rows.append([_cell(v, f"{model}/{d}") for v, d in zip(values, domains)])
        models.append(str(model))
    return ScoreMatrix(models, domains, np.array(rows, dtype=float).reshape(len(models), len(domains)),
                       base=data.get("base"), targets=dict(data.get("targets") or {}),
                       intensity=dict(data.get("intensity") or {}))


def load_matrix(path: Path) -> ScoreMatrix:
    """Read a score matrix from .json, .tsv or .csv."""
    if not path.is_file():
        raise EdgelmError(f"no score matrix at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EdgelmError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            return from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise EdgelmError(f"{path} is not valid JSON (line {exc.lineno})") from None
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    table = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    if len(table) < 2 or len(table[0]) < 2:
        raise EdgelmError(f"{path} needs a header (model, domains…) and at least one model row")
    domains = [d.strip() for d in table[0][1:]]
    models, rows = [], []
    for i, r in enumerate(table[1:], start=2):
        if len(r) != len(table[0]):
            raise EdgelmError(f"{path} line {i} has {len(r)} cells; the header has {len(table[0])}")
        models.append(r[0].strip())
        rows.append([_cell(v, f"{r[0].strip()}/{d}") for v, d in zip(r[1:], domains)])
    return ScoreMatrix(models, domains, np.array(rows, dtype=float))
