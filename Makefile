# reverie: `make quickstart` runs the main job, `make test` the test suite, each from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch unless a GPU is present. On machines without the local wheel, add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to get the CPU build from PyTorch's index.
TORCH_CPU ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: venv quickstart test test-slow bench clean

# ffmpeg generates test videos; EGL + Mesa render MuJoCo off-screen without a display; slurm-wlm
# and munge run the one-node cluster (slurm/local-cluster.sh) that the submission tests use.
SYSTEM_PACKAGES := ffmpeg libegl1 libegl-mesa0 libgl1-mesa-dri slurm-wlm munge

$(BIN)/reverie: pyproject.toml
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || printf "%s " $$p; done); \
	if [ -n "$$missing" ]; then echo "installing $$missing"; \
	  $$( [ $$(id -u) -eq 0 ] || echo sudo ) sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing" >/dev/null; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if command -v nvidia-smi >/dev/null; then $(BIN)/pip install -q torch; \
	else $(BIN)/pip install -q $(TORCH_CPU) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)); fi
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/reverie

venv: $(BIN)/reverie

quickstart: venv
	$(BIN)/python -m reverie.recipes.quickstart --out runs/quickstart

test: venv
	$(BIN)/python -m pytest -q

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

bench: venv
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) runs .pytest_cache
