# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run describe test test-slow bench clean readme-numbers

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: 2,000 replicates of the paper's scenario, both analysis plans, then the
# summary and the report (results/liu2021/report.html; the paper matched 34 pairs). Rerunning
# resumes the same run folder (instant once finished).
run: $(STAMP)
	$(BIN)/psmsim run scenarios/liu2021.toml --replicates 2000 --out results/liu2021
	$(BIN)/psmsim report results/liu2021

# After a change of scenarios/liu2021.toml or of the engine: rerun `make run`'s command and save
# its summary where tests/sim/run/test_readme_numbers.py compares it with the README's excerpt;
# then paste the printed lines the README quotes into its make-run block.
readme-numbers: $(STAMP)
	$(BIN)/psmsim run scenarios/liu2021.toml --replicates 2000 --out results/liu2021
	cp results/liu2021/summary.nc tests/data/make_run/summary.nc

describe: $(STAMP)
	$(BIN)/psmsim describe scenarios/liu2021.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	nice -n 10 $(BIN)/python benchmarks/bench_engine.py --end-to-end 2000 --scaling 50 10 --json results/bench_engine.json
	nice -n 10 $(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache
