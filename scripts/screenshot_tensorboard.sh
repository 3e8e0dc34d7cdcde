#!/usr/bin/env bash
# Screenshot TensorBoard's Images tab for one run: the learned filters and the feature maps that the
# default callbacks log (the README's picture, docs/images/tensorboard.png).
#   bash scripts/screenshot_tensorboard.sh RUN_DIR [OUT_PNG]      # default OUT_PNG: docs/images/tensorboard.png
#   TAGS='filters/.*' WIDTH=1500 HEIGHT=990 PORT=6006 bash scripts/screenshot_tensorboard.sh RUN_DIR
# Needs chromium (Debian package: apt-get install chromium; or CHROMIUM=/path/to/chrome); not part of CI.
# The default TAGS, WIDTH and HEIGHT frame the five cards of a simple_cnn run with the default callbacks
# in three columns, cut just above the next tag group.
set -euo pipefail
RUN_DIR=${1:?usage: bash scripts/screenshot_tensorboard.sh RUN_DIR [OUT_PNG]}
[[ -d "$RUN_DIR" ]] || { echo "no such run directory: $RUN_DIR" >&2; exit 1; }
RUN_DIR=$(cd "$RUN_DIR" && pwd)
OUT=${2:+$(cd "$(dirname "$2")" && pwd)/$(basename "$2")}  # RUN_DIR and OUT_PNG are relative to the caller
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/images/tensorboard.png}
RUN_DIR=$(realpath --relative-base=. "$RUN_DIR")  # the sidebar shows the log dir: outputs/..., not /home/...
PY=${PYTHON:-.venv/bin/python}
TB=${TENSORBOARD:-.venv/bin/tensorboard}
CHROMIUM=${CHROMIUM:-chromium}
PORT=${PORT:-6006}
WIDTH=${WIDTH:-1500}
HEIGHT=${HEIGHT:-990}
# the RGB filter tiles, the two fixed input images and the feature maps of the first one at each stage
TAGS=${TAGS:-'filters/.*/rgb|feature_maps/(input|.*/image0)'}
URL_BASE="http://127.0.0.1:$PORT"

command -v "$CHROMIUM" >/dev/null || { echo "$CHROMIUM not found: apt-get install chromium, or set CHROMIUM" >&2; exit 1; }

"$TB" --logdir "$RUN_DIR" --host 127.0.0.1 --port "$PORT" >"${TMPDIR:-/tmp}/screenshot_tensorboard.log" 2>&1 &
TB_PID=$!
trap 'kill "$TB_PID" 2>/dev/null || true' EXIT

# wait until TensorBoard serves the run's image tags (it reads the event files after it starts listening)
for attempt in $(seq 120); do
  if "$PY" - "$URL_BASE/data/plugin/images/tags" <<'PYEOF' 2>/dev/null; then break; fi
import sys, urllib.request
tags = urllib.request.urlopen(sys.argv[1], timeout=2).read()
sys.exit(0 if b"filters/" in tags and b"feature_maps/" in tags else 1)
PYEOF
  kill -0 "$TB_PID" 2>/dev/null || { echo "tensorboard exited:" >&2; cat "${TMPDIR:-/tmp}/screenshot_tensorboard.log" >&2; exit 1; }
  [[ $attempt -lt 120 ]] || { echo "no filters/ and feature_maps/ image tags in $RUN_DIR after 120 s" >&2; exit 1; }
  sleep 1
done

TAG_FILTER=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$TAGS")
RAW=$(mktemp "${TMPDIR:-/tmp}/tensorboard.XXXXXX.png")
# --no-sandbox: chromium refuses to run as root otherwise; the page is our own local TensorBoard.
# --virtual-time-budget: let the page fetch and draw the images before the shot.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$WIDTH,$HEIGHT" \
  --virtual-time-budget=20000 --run-all-compositor-stages-before-draw \
  --screenshot="$RAW" "$URL_BASE/#images&tagFilter=$TAG_FILTER" >/dev/null 2>&1
"$PY" - "$RAW" "$OUT" <<'PYEOF'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").save(sys.argv[2], optimize=True)
PYEOF
rm -f "$RAW"
echo "wrote $OUT ($(du -k "$OUT" | cut -f1) KB)"
