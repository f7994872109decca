# 接诉即办助手 — the two commands a user needs are `make run` and `make test`.
PY ?= python3
SVC := .venv/svc/bin/python
RASA := .venv/rasa/bin/python
export PYTHONPATH := $(CURDIR)
export RASA_TELEMETRY_ENABLED := false

.PHONY: run setup test lock train-classifier eval-classifier eval-kb eval-nlu bench clean-var

run:            ## set up (idempotent, cached) and start Rasa + services; Ctrl-C stops both
	$(PY) scripts/run.py

setup:          ## only the set-up
	$(PY) scripts/setup.py

test:           ## set up, then every test stage (unit, PostgreSQL, Rasa, end-to-end); non-zero on any failure
	$(PY) scripts/test.py

lock:           ## re-resolve both environments from requirements/*.in into requirements/*.lock
	$(PY) scripts/lock.py

train-classifier: setup
	$(SVC) -m classifier.train --out var/models/classifier-manual --encoder var/models/encoder

eval-classifier: setup
	$(SVC) -m classifier.evaluate --report-dir reports/classifier

eval-kb: setup
	$(SVC) -m knowledge_base.evaluate --report-dir reports/kb

eval-nlu: setup
	$(PY) scripts/eval_nlu.py

bench: setup
	$(SVC) -m benchmarks.run_all

clean-var:      ## remove runtime data (databases, indexes); caches stay
	rm -rf var
