"""SCAR routing over distilled experts (the router so far; routed models and bundles come next)."""
