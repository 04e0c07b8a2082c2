"""BiStil distillation: vocabulary trimming, student initialisation, phase 1 (general) and phase 2
(task, lottery-ticket sparse fine-tuning). `run.distill` ties them into one resumable run folder."""
