#!/usr/bin/env bash
# Installs everything cellfeed needs on a fresh Debian bookworm machine (run as root),
# then builds and installs the cellfeed package (extension module + `cellfeed` command).
# Every dependency and why it is there: docs/DEPENDENCIES.md.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need_apt=0
for pkg in libhdf5-dev zlib1g-dev libdeflate-dev liblzf-dev libgtest-dev pkg-config fio \
           libblosc-dev libzstd-dev liblz4-dev nlohmann-json3-dev python3-venv libcli11-dev \
           libcurl4-openssl-dev libssl-dev chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends \
    libhdf5-dev zlib1g-dev libdeflate-dev liblzf-dev libgtest-dev pkg-config g++ make fio \
    libblosc-dev libzstd-dev liblz4-dev nlohmann-json3-dev python3-venv libcli11-dev \
    libcurl4-openssl-dev libssl-dev chromium
fi

python3 -m pip install -q --upgrade-strategy only-if-needed -r requirements-dev.txt
# torch: pinned, so pip takes the local CPU wheel instead of downloading CUDA builds; the
# packages that depend on torch are installed in the same command, so that they cannot
# pull another torch.
python3 -m pip install -q torch==2.13.0 -r requirements-torch.txt
python3 -m pip install -q --no-build-isolation .

# A Python 3.12 environment for the zarr tests' fixtures: anndata >= 0.13 (sharded zarr v3
# by default) and annbatch need Python >= 3.12 (tests/python/test_zarr.py runs it to write
# stores and their references; the tests skip, saying so, when it is absent).
if [ ! -x .venv-zarr312/bin/python ]; then
  py312=""
  if PYENV_VERSION=3.12.1 python3.12 -c 'import sys' >/dev/null 2>&1; then
    py312="env PYENV_VERSION=3.12.1 python3.12"
  elif command -v python3.12 >/dev/null 2>&1; then
    py312="python3.12"
  fi
  if [ -n "$py312" ]; then
    $py312 -m venv .venv-zarr312
    # zarrs: the codec pipeline annbatch recommends (bench/annbatch_bench.py uses it)
    .venv-zarr312/bin/pip install -q "anndata>=0.13" "zarr>=3" annbatch==0.3.1 zarrs h5py
  else
    echo "warning: no python3.12: the zarr tests that need anndata >= 0.13 / annbatch will skip" >&2
  fi
fi
# cell-load 0.10.4 (the loader behind STATE) in its own environment, its dependency
# versions pinned: tests/python/test_cell_load_splits.py compares cellfeed's splits and
# fields with it (skipping, saying so, when absent); bench/perturb_bench.py times it.
# torch first and pinned, so pip takes the local CPU wheel.
if ! .venv-cellload/bin/python -c 'import cell_load' >/dev/null 2>&1; then
  python3 -m venv .venv-cellload
  .venv-cellload/bin/pip install -q torch==2.13.0
  .venv-cellload/bin/pip install -q torch==2.13.0 -r requirements-cellload.txt
fi
# scGPT's own code (0.2.4, as published), unpacked without its dependencies: the tests
# compare the value bins with its `binning` (tests/python/test_scgpt_reference.py).
if [ ! -f .scgpt-ref/scgpt/preprocess.py ]; then
  python3 -m pip install -q --no-deps --target .scgpt-ref scgpt==0.2.4
fi
# The documentation site's tools (scripts/docs.sh) in their own venv, which sees the
# system's packages and so the cellfeed just installed: Sphinx 9 needs a newer docutils
# than some system packages accept, so it stays out of the system site-packages.
if ! .venv-docs/bin/python -c 'import sphinx, myst_parser, furo' >/dev/null 2>&1; then
  python3 -m venv --system-site-packages .venv-docs
fi
.venv-docs/bin/python -m pip install -q -r requirements-docs.txt
echo "cellfeed installed: $(python3 -c 'import cellfeed; print(cellfeed.__version__)')"
