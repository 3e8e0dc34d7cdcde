#!/usr/bin/env bash
# Prepare what a GPU check on the `device` machine needs and cannot download there (run here, once):
#   .gpu/wheels/   hydra-core, omegaconf and antlr4-python3-runtime (pure Python; the machine's image has
#                  torch, lightning, torchmetrics, torchvision and tensorboard already)
#   .gpu/cifar10-jpg.tar.gz   the CIFAR-10 copy (19 MB), if the shared one is found
# Then, through the device tool: carry [".gpu"], command "bash scripts/gpu_check.sh" (docs/speed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/wheels
# antlr4-python3-runtime 4.9.3 is published as a source archive only: build its (pure Python) wheel here
# (the versions this checkout's environment uses)
PINS=$("$PYTHON" -m pip freeze | grep -iE '^(hydra-core|omegaconf|antlr4-python3-runtime)==')
rm -f .gpu/wheels/*.whl
"$PYTHON" -m pip wheel -q --no-deps -w .gpu/wheels $PINS
DATA=${CIFAR10_TAR:-../shared/datasets/cifar10-jpg.tar.gz}
if [[ -f $DATA ]]; then cp "$DATA" .gpu/; fi
ls -l .gpu .gpu/wheels
