#!/usr/bin/env bash
# Set up cnnpl on a fresh machine: a virtual environment in .venv with torch, the project and its
# test dependencies. With --with-data, also unpack CIFAR-10 into data/ from the team's local copy
# (../shared/datasets/cifar10-jpg.tar.gz) when data/ does not hold it yet.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in  # helper-141: --with_data or --help ran the whole install and unpacked nothing
  ""|--with-data) ;;
  -h|--help) echo "usage: bash scripts/setup.sh [--with-data]"; exit 0 ;;
  *) echo "setup.sh: unknown argument $1; usage: bash scripts/setup.sh [--with-data]" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "setup.sh: one argument at most; usage: bash scripts/setup.sh [--with-data]" >&2; exit 2; }
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned to the pair this project is tested with (a CUDA build that also runs on CPUs)
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[test]"
for plugin in plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] && .venv/bin/python -m pip install -q -e "$plugin"
done

if [ "${1:-}" = "--with-data" ]; then
  archive=../shared/datasets/cifar10-jpg.tar.gz
  if [ -d data/train ] || [ -d data/cifar-10-batches-py ]; then
    echo "CIFAR-10 already in data/"
  elif [ -f "$archive" ]; then
    mkdir -p data && tar -xzf "$archive" -C data && echo "CIFAR-10 unpacked into data/"
  else
    echo "No CIFAR-10 in data/ and no $archive: put it in data/ (see README) or train with data=shapes" >&2
  fi
fi
