#!/usr/bin/env bash
# The GPU checks of issue 9 as one call of the `device` tool (docs/speed.md, "The GPU variant").
# Prepare here once with scripts/gpu_wheels.sh, then run there:
#   carry [".gpu"], timeout_s 600, command "bash scripts/gpu_check.sh"
# It prints the GPU, trains one epoch of synthetic shapes through `python -m cnnpl` on the GPU (a
# smoke run), then times `experiment=fast_cifar10_gpu` on CIFAR-10 (JPEG copy) for SEEDS (default
# "0 1") with benchmarks/fast_cifar10.py. Extra arguments are overrides for the recipe runs
# (system.compile=true, say). The log is also written to $OUT/gpu_check.log.
# Off the device machine: PYTHON=.venv/bin/python ACCELERATOR=cpu bash scripts/gpu_check.sh <overrides>
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ACCELERATOR=${ACCELERATOR:-gpu}
SEEDS=${SEEDS:-0 1}
OUT=${OUT:-/tmp/cnnpl-gpu-check}
mkdir -p "$OUT"
# run folders new at each call (helper-141: a second call on a machine still held found the first one's
# checkpoints there, and both runs refuse a folder that holds a run)
RUNS=$(mktemp -d /tmp/cnnpl-runs.XXXXXX)
exec > >(tee "$OUT/gpu_check.log") 2>&1

"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/cnnpl-site .gpu/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/cnnpl-site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "(no nvidia-smi)"
"$PYTHON" -c "import torch, lightning, cnnpl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      'lightning', lightning.__version__, 'cnnpl', cnnpl.__file__)" || exit 1

echo "== smoke: data=shapes, one epoch, trainer.accelerator=$ACCELERATOR"
start=$(date +%s)
"$PYTHON" -m cnnpl data=shapes trainer.max_epochs=1 "trainer.accelerator=$ACCELERATOR" \
    callbacks.progress_bar.refresh_rate=0 "hydra.run.dir=$RUNS/smoke" || exit 1
echo "smoke run: $(( $(date +%s) - start )) s"

echo "== experiment=fast_cifar10_gpu, seeds $SEEDS $*"
mkdir -p /tmp/cifar10 && tar -xzf .gpu/cifar10-jpg.tar.gz -C /tmp/cifar10 || exit 1
# shellcheck disable=SC2086  # SEEDS is a list
"$PYTHON" benchmarks/fast_cifar10.py --root /tmp/cifar10 --experiment fast_cifar10_gpu --seeds $SEEDS \
    --out "$RUNS/fast_cifar10_gpu" "$@"
