"""DSI, GG, forgetting reduction, CDTR and Spearman ρ over a score matrix.

These are edgelm's definitions of the concepts GEM ("Fragile Mastery", Jha & Paudel 2025) names:
the paper's own equations could not be recovered, so the formulas follow the working definitions
of research/gem.md §1.3. Notation: M_0 the base, M_t a specialist for domain t, S(M, d) a score,
S̄(M, A) the unweighted mean over domains A.

- DSI(M, t) = S(M, t) / S̄(M, D∖{t})                      [default: ratio; 1 = no specialisation]
  DSI±(M, t) = (S(M,t) − S̄) / (S(M,t) + S̄)               [bounded, in [−1, 1]]
- GG_rel(M) = 1 − S̄(M, G) / S̄(M_0, G)                    [default; > 0 = general ability lost]
  GG_abs(M) = S̄(M_0, G) − S̄(M, G)
  G = the domains other than M's target (all domains for a model without one), or a given set.
- FR(method vs reference) = 1 − GG(method) / GG(reference), both on the reference's G.
- CDTR(s→t) = (S(M_s, t) − S(M_0, t)) / (S(M_t, t) − S(M_0, t))   [default: gain; 1 on the diagonal;
  undefined unless the specialist for t beats the base on t by more than ε]
  CDTR'(s→t) = S(M_s, t) / S(M_s, s)                              [simple]
- ρ = Spearman rank correlation of a compression intensity with GG (and DSI) across variants.

Every undefined value is NaN and comes with a reason in `undefined`; nothing is silently guessed.
"""

from __future__ import annotations

import math

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.tradeoffs.matrix import ScoreMatrix

DSI_FORMS = ("ratio", "bounded")
GG_FORMS = ("rel", "abs")
CDTR_FORMS = ("gain", "simple")
NAN = math.nan


class _Log:
    def __init__(self) -> None:
        self.undefined: list[dict] = []

    def nan(self, metric: str, where: str, reason: str) -> float:
        self.undefined.append({"metric": metric, "where": where, "reason": reason})
        return NAN


def _mean(m: ScoreMatrix, model: str, domains: list[str]) -> tuple[float, list[str]]:
    """Mean score of `model` over `domains`, and the domains whose cell is missing."""
    values = [m.score(model, d) for d in domains]
    missing = [d for d, v in zip(domains, values) if math.isnan(v)]
    return (NAN if missing or not values else float(np.mean(values))), missing


def dsi(m: ScoreMatrix, model: str, domain: str, log: _Log) -> dict:
    where = f"{model}@{domain}"
    if len(m.domains) < 2:
        nan = log.nan("dsi", where, "needs at least two domains (one to specialise on, one elsewhere)")
        return {"ratio": nan, "bounded": nan}
    s_t = m.score(model, domain)
    rest, missing = _mean(m, model, [d for d in m.domains if d != domain])
    if math.isnan(s_t) or missing:
        cells = ([domain] if math.isnan(s_t) else []) + missing
        nan = log.nan("dsi", where, f"missing scores: {', '.join(cells)}")
        return {"ratio": nan, "bounded": nan}
    ratio = s_t / rest if rest > 0 else log.nan("dsi", where, "mean score elsewhere is 0")
    bounded = (s_t - rest) / (s_t + rest) if s_t + rest > 0 else log.nan("dsi", where, "all scores are 0")
    return {"ratio": ratio, "bounded": bounded}


def general_domains(m: ScoreMatrix, model: str, general: list[str] | None) -> list[str]:
    if general:
        return general
    target = m.targets.get(model)
    return [d for d in m.domains if d != target]


def gg(m: ScoreMatrix, model: str, domains: list[str], log: _Log) -> dict:
    where = f"{model} on {','.join(domains) if len(domains) <= 4 else f'{len(domains)} domains'}"
    if m.base is None:
        nan = log.nan("gg", where, "no base (generalist) model given")
        return {"abs": nan, "rel": nan}
    if not domains:
        nan = log.nan("gg", where, "no general domains left: a single domain is its own target")
        return {"abs": nan, "rel": nan}
    base, miss_b = _mean(m, m.base, domains)
    mine, miss_m = _mean(m, model, domains)
    if miss_b or miss_m:
        cells = [f"{m.base}/{d}" for d in miss_b] + [f"{model}/{d}" for d in miss_m]
        nan = log.nan("gg", where, f"missing scores: {', '.join(cells)}")
        return {"abs": nan, "rel": nan}
    rel = 1 - mine / base if base > 0 else log.nan("gg", where, "the base scores 0 on the general domains")
    return {"abs": base - mine, "rel": rel}


def forgetting_reduction(m: ScoreMatrix, method: str, reference: str, general: list[str] | None,
                         form: str, log: _Log, eps: float) -> dict:
    """How much less general ability `method` loses than `reference`, on the reference's G."""
    domains = general_domains(m, reference, general)
    g_ref = gg(m, reference, domains, log)[form]
    g_met = gg(m, method, domains, log)[form]
    where = f"{method} vs {reference}"
    if math.isnan(g_ref) or math.isnan(g_met):
        value = log.nan("forgetting_reduction", where, "a generalization gap is undefined (see above)")
    elif g_ref <= eps:
        value = log.nan("forgetting_reduction", where, f"the reference loses nothing (GG {g_ref:.4f} ≤ {eps})")
    else:
        value = 1 - g_met / g_ref
    return {"method": method, "reference": reference, "on": domains, "gg_method": g_met, "gg_reference": g_ref,
            "value": value}


def cdtr(m: ScoreMatrix, form: str, log: _Log, eps: float) -> dict:
    """CDTR over the specialists' target domains: rows s (source specialist), columns t."""
    by_domain: dict[str, str] = {}
    for model, domain in m.targets.items():
        by_domain.setdefault(domain, model)
    domains = [d for d in m.domains if d in by_domain]
    n = len(domains)
    out = np.full((n, n), NAN)
    if n < 2:
        log.nan("cdtr", "matrix", "needs specialists for at least two domains")
    for i, s in enumerate(domains):
        for j, t in enumerate(domains):
            ms, mt, where = by_domain[s], by_domain[t], f"{s}→{t}"
            if form == "simple":
                num, den = m.score(ms, t), m.score(ms, s)
                if math.isnan(num) or math.isnan(den):
                    log.nan("cdtr", where, "missing score")
                elif den <= 0:
                    log.nan("cdtr", where, f"{ms} scores 0 on its own domain")
                else:
                    out[i, j] = num / den
                continue
            if m.base is None:
                log.nan("cdtr", where, "no base (generalist) model given")
                continue
            base_t = m.score(m.base, t)
            gain, own = m.score(ms, t) - base_t, m.score(mt, t) - base_t
            if math.isnan(gain) or math.isnan(own):
                log.nan("cdtr", where, "missing score")
            elif own <= eps:  # a loss on its own domain would flip the ratio's sign: no meaning left
                log.nan("cdtr", where, f"no in-domain gain on {t}: {mt} vs the base {own:+.4f} (≤ {eps})")
            else:
                out[i, j] = gain / own
    off = out[~np.eye(n, dtype=bool)] if n else out.ravel()
    off = off[~np.isnan(off)]
    return {"form": form, "domains": domains, "specialists": [by_domain[d] for d in domains],
            "matrix": out.tolist(), "off_diagonal_mean": float(off.mean()) if off.size else NAN}


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's ρ with average ranks for ties; NaN when a side is constant or n < 3."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return NAN

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(v.size)
        r[order] = np.arange(1, v.size + 1)
        for value in np.unique(v):
            tie = v == value
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def tradeoff_report(m: ScoreMatrix, *, compare: list[tuple[str, str]] = (), general: list[str] | None = None,
                    dsi_form: str = "ratio", gg_form: str = "rel", cdtr_form: str = "gain",
                    eps: float = 1e-3) -> dict:
    """Every metric the matrix supports, the raw matrix, and the reasons for each NaN."""
    for name, value, forms in (("DSI", dsi_form, DSI_FORMS), ("GG", gg_form, GG_FORMS), ("CDTR", cdtr_form, CDTR_FORMS)):
        if value not in forms:
            raise EdgelmError(f"unknown {name} form {value!r}; use one of {', '.join(forms)}")
    for d in general or []:
        m.col(d)
    for method, reference in compare:
        m.row(method), m.row(reference)
    log = _Log()
    report: dict = {"raw": m.to_dict(),
                    "forms": {"dsi": dsi_form, "gg": gg_form, "cdtr": cdtr_form, "epsilon": eps},
                    "definitions": __doc__.split("\n\n")[2].strip()}
    report["dsi"] = {model: {"domain": d, **dsi(m, model, d, log)} for model, d in m.targets.items()}
    report["gg"] = {}
    for model in m.models:
        if model == m.base:
            continue
        domains = general_domains(m, model, general)
        report["gg"][model] = {"on": domains, **gg(m, model, domains, log)}
    report["forgetting_reduction"] = [forgetting_reduction(m, a, b, general, gg_form, log, eps) for a, b in compare]
    fr = [r["value"] for r in report["forgetting_reduction"] if not math.isnan(r["value"])]
    report["forgetting_reduction_mean"] = float(np.mean(fr)) if fr else NAN
    report["cdtr"] = cdtr(m, cdtr_form, log, eps)
    variants = list(m.intensity)
    sp = {}
    for what, values in (("gg", {v: report["gg"].get(v, {}).get(gg_form, NAN) for v in variants}),
                         ("dsi", {v: report["dsi"].get(v, {}).get(dsi_form, NAN) for v in variants})):
        if what == "gg" and m.base in values:
            values[m.base] = 0.0  # the base loses nothing against itself
        pairs = [(m.intensity[v], g) for v, g in values.items() if not math.isnan(g)]
        rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else NAN
        if math.isnan(rho) and m.intensity:
            log.nan("spearman", f"intensity vs {what}", f"needs ≥ 3 variants with an intensity and a defined {what}, "
                    f"not all equal (have {len(pairs)})")
        sp[f"intensity_vs_{what}"] = {"rho": rho, "n": len(pairs)}
    report["spearman"] = sp
    report["undefined"] = log.undefined
    return report
