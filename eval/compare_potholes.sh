#!/usr/bin/env sh
# The two pothole models side by side on the shared pothole set (133 images),
# as deployed: each at its catalog input size, minimal letterbox, NMS IoU 0.7,
# boxes kept above 0.001 for AP, P/R/F1 above 0.25. Writes the comparison to
# runs/eval/compare_potholes/ and the PR overlay embedded in the README to
# docs/pothole_pr.png. Models come from the catalog (CITYWATCH_MODEL_MIRROR_DIR
# offline); the shared data from CITYWATCH_SHARED_DIR, default ../shared.
set -eu
cd "$(dirname "$0")/.."
SHARED="${CITYWATCH_SHARED_DIR:-../shared}"
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m eval.cli compare \
  --model yolo11n-pothole-416 \
  --model yolov5n-pothole \
  --data "$SHARED/data/datasets/potholes/data.yaml" \
  --split test \
  --out runs/eval/compare_potholes \
  --pr-png docs/pothole_pr.png \
  "$@"
