# rmaint — make demo · make test · make protos · make check-protos · make lint · make bench
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTO_SRC := $(wildcard protos/rmaint/v1/*.proto)

.PHONY: install test unit integration demo protos check-protos lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP) check-protos
	$(PY) -m pytest -q tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

demo: $(STAMP)
	$(PY) demo/run.py

protos: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=protos --grpc_python_out=protos \
	  --mypy_out=protos --mypy_grpc_out=protos $(PROTO_SRC)

# Regenerates into a scratch folder and fails when the committed code differs.
check-protos: $(STAMP)
	@rm -rf build/protos-check && mkdir -p build/protos-check
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=build/protos-check --grpc_python_out=build/protos-check \
	  --mypy_out=build/protos-check --mypy_grpc_out=build/protos-check $(PROTO_SRC) >/dev/null
	@for f in build/protos-check/rmaint/v1/*; do \
	  cmp -s "$$f" "protos/rmaint/v1/$$(basename $$f)" || { echo "stale generated code: protos/rmaint/v1/$$(basename $$f) (run make protos)"; exit 1; }; \
	done
	@echo "generated protobuf code is fresh"

lint: $(STAMP)
	$(VENV)/bin/ruff check agent controller permissions pki tlog tests bench demo protos/rmaint/*.py
	$(VENV)/bin/mypy agent controller permissions pki tlog

bench: $(STAMP)
	$(PY) -m bench.diag_latency
	$(PY) -m bench.cli_walltime
	$(PY) -m bench.tlog_bench
	$(PY) -m bench.process_listing
	$(PY) -m bench.inspection_cpu
	$(PY) -m bench.data_apply
	$(PY) -m bench.dialout_scale
	$(PY) -m bench.audit_append
	$(PY) -m bench.gateway

clean:
	rm -rf build .pytest_cache
