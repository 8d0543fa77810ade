# Two commands matter: `make demo` (the whole pipeline on the sandbox) and `make test`.
# Both bootstrap everything on a machine that has only Python 3.11 and pip.
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
RUN := $(UV) run --frozen --no-sync

.PHONY: install demo airflow test bench lint fmt clean

$(VENV)/.synced: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen --python $(shell command -v python3.11 || command -v $(PYTHON))
	@touch $@

install: $(VENV)/.synced

demo: install
	$(RUN) csw demo

airflow: install
	$(RUN) csw airflow

test: install
	$(RUN) pytest -q

bench: install
	$(RUN) python -m benchmarks

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean:
	rm -rf data .pytest_cache
