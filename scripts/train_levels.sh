#!/bin/bash
# Train every quality level of a learned codec the way the shipped weights were made:
#   scripts/train_levels.sh ARCH [INIT]      (ARCH: hyperprior or factorized)
# 1. the base level q3 (lambda 0.013) at learning rate 5e-4 for BASE_MIN minutes, resuming
#    RUNS/ARCH/q3.pt when it exists, else starting from INIT (any checkpoint or weights file whose
#    transforms match, e.g. a hyperprior's for a factorized model) or from scratch;
# 2. the same at 1e-4 for DECAY_MIN minutes;
# 3. each other level fine-tuned from q3 (Liu et al. 2018) for FT_MIN minutes at 2e-4, unless
#    its checkpoint exists.
# Then: mlcompress export --runs RUNS/ARCH --arch ARCH --kodak ../shared/data/kodak \
#           --cells bench/results/cells.jsonl
# Every stage checkpoints (and stops cleanly on SIGTERM); re-running the script resumes it.
set -eu
ARCH=${1:?usage: scripts/train_levels.sh ARCH [INIT]}
INIT=${2:-}
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=${RUNS:-runs}/$ARCH
DATA=${DATA:-../shared/data/train}
COMMON="--data $DATA --N 64 --M 96 --batch 4 --crop 128 --threads ${THREADS:-1} --quiet"
FIRST=""
if [ ! -f "$R/q3.pt" ] && [ -n "$INIT" ]; then FIRST="--init $INIT"; fi
$PY -m mlcompress.cli train "$ARCH" $COMMON --lambda 0.013 --steps 1000000 --lr 5e-4 --out "$R/q3.pt" \
    --resume $FIRST --time-limit "${BASE_MIN:-60}"
$PY -m mlcompress.cli train "$ARCH" $COMMON --lambda 0.013 --steps 1000000 --lr 1e-4 --out "$R/q3.pt" \
    --resume --time-limit "${DECAY_MIN:-8}"
for spec in 4:0.025 2:0.0067 5:0.0483 1:0.0035; do
  q=${spec%%:*}; l=${spec##*:}
  [ -f "$R/q$q.pt" ] && continue
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda "$l" --steps 1000000 --lr 2e-4 --init "$R/q3.pt" \
      --out "$R/q$q.pt" --time-limit "${FT_MIN:-12}"
done
