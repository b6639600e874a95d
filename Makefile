# Targets a newcomer needs; `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help venv dev test test-rust bench lint fmt wheels ci clean powerfs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

venv: ## create .venv with the build tool (test and lint tools: pyproject extras, via dev)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q "maturin>=1.9.4,<2"

dev: venv ## build the extension in release mode into .venv (editable), with the test,lint extras
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release --extras test,lint

test: dev ## run the Python tests (HYPOTHESIS_PROFILE=dev for a quick run)
	$(VENV)/bin/pytest

test-rust: ## run the Rust unit tests (no interpreter needed for the file layer)
	cargo test

powerfs: ## build the power-loss FUSE file system (tests/powerfs; its tests skip without it)
	cargo build --release --manifest-path tests/powerfs/Cargo.toml

bench: dev ## run the benchmark table against the pure-Python reference
	$(PY) benches/bench_writers.py

lint: dev ## ruff, mypy (pyproject [tool.mypy]), stubtest, clippy, rustfmt: all must be clean
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m mypy.stubtest sessionwal._native
	cargo clippy --all-targets -- -D warnings
	cargo fmt --check

fmt: ## format Rust and Python sources
	cargo fmt
	$(VENV)/bin/ruff format python tests benches

wheels: ## release wheels (manylinux_2_17 x86_64, one per CPython found) and the sdist into dist/
	bash .ci/wheels dist

ci: ## what CI runs: each wheel in a fresh venv on its CPython, tests, cargo test, linters
	bash .ci/run

clean: ## remove build outputs
	rm -rf target dist $(VENV)
