"""What specialising costs elsewhere: DSI, GG, forgetting reduction, CDTR and Spearman ρ.

    from edgelm.tradeoffs import load_matrix, tradeoff_report
    report = tradeoff_report(load_matrix(Path("scores.json")), compare=[("scar", "swh-specialist")])
"""

from edgelm.tradeoffs.matrix import ScoreMatrix, from_json, load_matrix
from edgelm.tradeoffs.tradeoff import CDTR_FORMS, DSI_FORMS, GG_FORMS, spearman, tradeoff_report

__all__ = ["ScoreMatrix", "from_json", "load_matrix", "tradeoff_report", "spearman", "DSI_FORMS", "GG_FORMS",
           "CDTR_FORMS"]
