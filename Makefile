# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2
DEMO_HOME ?= .cvcycle/demo

.PHONY: install browser demo demo-data test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf $(DEMO_HOME) $(DEMO_HOME)-report.json
	$(BIN)/cvcycle demo --home $(DEMO_HOME) --json-out $(DEMO_HOME)-report.json

demo-data: install
	rm -rf $(DEMO_HOME)-data $(DEMO_HOME)-data-out
	CVCYCLE_HOME=$(DEMO_HOME)-data bash scripts/demo-data.sh $(DEMO_HOME)-data-out

# Browser tests drive Debian's Chromium through Playwright; install it when it is missing.
browser:
	@test -x /usr/bin/chromium || { echo "installing chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }; \
	  else sudo apt-get install -y -q chromium >/dev/null; fi; }

test: install browser
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install browser
	$(BIN)/python bench/datasets.py
	$(BIN)/python bench/detector.py --seeds 1 2 3
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/ui.py

clean:
	rm -rf $(VENV) .cvcycle .pytest_cache .mypy_cache .ruff_cache
