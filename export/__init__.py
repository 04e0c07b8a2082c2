"""edgelm.exporters: turning checkpoints into verified edge bundles.

`bundle.export_bundle` is the one entry point: it checks the options, traces the model through one
backend per target (`onnx`: torch.onnx with onnxruntime quantization; `tflite`: litert-torch, a
signature per sequence bucket; `routed`: a routed model's body and experts as separate graphs),
verifies the result against the source model in this process and again in a torch-free one, and
writes the bundle with `runtime.bundle.write_manifest`. Without a passing parity check there is no
bundle.
"""
