#!/usr/bin/env bash
# Sets up vtgkit and runs the main job: R2-Tuning `vtgkit predict` on the official reference set in ../shared/oracle
# (an official-format checkpoint with random weights, official feature caches, QVHighlights-format annotations),
# then evaluates the predictions (R2-Tuning's evaluator: an empty length bucket falls back to the full set)
# and compares predictions and metrics with what the official implementation produced; then runs the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
REF="${VTGKIT_ORACLE_R2:-../shared/oracle/r2tuning/reference}"
OUT="${1:-quickstart_out}"
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[features,viz]"
mkdir -p "$OUT"
vtgkit predict --model r2tuning --dataset qvhighlights --checkpoint "$REF/r2_random.pth" \
  --data-root "$REF/data/qvhighlights" --annotations "$REF/data/qvhighlights/qvhighlights_val.jsonl" \
  --output "$OUT/val_predictions.jsonl"
vtgkit evaluate --dataset qvhighlights --predictions "$OUT/val_predictions.jsonl" \
  --ground-truth "$REF/data/qvhighlights/qvhighlights_val.jsonl" --protocol r2tuning --output "$OUT/metrics.json"
python "$REF/../check_submission.py" "$OUT/val_predictions.jsonl" "$REF"
python "$REF/../check_metrics.py" "$OUT/metrics.json" "$REF"
# The offline demo: a small model trained on SynthVTG grounds queries in a shipped synthetic video.
vtgkit demo --output "$OUT/demo"
echo "predictions: $OUT/val_predictions.jsonl  metrics: $OUT/metrics.json  demo report: $OUT/demo/report.html"
