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
for pkg in libhdf5-dev zlib1g-dev libdeflate-dev liblzf-dev libgtest-dev pkg-config fio; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends \
    libhdf5-dev zlib1g-dev libdeflate-dev liblzf-dev libgtest-dev pkg-config g++ make fio
fi

python3 -m pip install -q --upgrade-strategy only-if-needed -r requirements-dev.txt
# torch: pinned, so pip takes the local CPU wheel instead of downloading CUDA builds; the
# packages that depend on torch are installed in the same command, so that they cannot
# pull another torch.
python3 -m pip install -q torch==2.13.0 -r requirements-torch.txt
python3 -m pip install -q --no-build-isolation .
echo "cellfeed installed: $(python3 -c 'import cellfeed; print(cellfeed.__version__)')"
