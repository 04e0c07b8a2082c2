"""edgelm.export: turning checkpoints into verified edge bundles.

What will live here (export issue): one backend per target (ONNX through torch.onnx, TFLite through
litert-torch) with its quantization modes, the bundle writer (model files, tokenizer, config,
manifest with sha256s and a parity record) and the verification that every export must pass.
"""
