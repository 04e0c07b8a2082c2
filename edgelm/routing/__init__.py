"""SCAR routing over distilled experts: a routed model (`model`: a shared body, per-domain experts, the
router; written by `save_routed`, read by `RoutedModel.load`), how it is trained (`config`, `split`,
`cache`, `experts`, `router`, `fitting`, tied together by `train`), and `encoder`, a routed model behind
the `Embedder` interface."""
