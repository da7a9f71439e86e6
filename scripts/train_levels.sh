#!/bin/bash
# Train every quality level of a learned codec the way the shipped weights were made:
#   scripts/train_levels.sh ARCH [INIT]      (ARCH: hyperprior or factorized)
# 1. the base level q3 (lambda 0.013) at learning rate 5e-4 for BASE_MIN minutes, resuming
#    RUNS/ARCH/q3.pt when it exists, else starting from INIT (any checkpoint or weights file whose
#    transforms match, e.g. a hyperprior's for a factorized model) or from scratch;
# 2. the same at 1e-4 for DECAY_MIN minutes, then at 1e-5 for POLISH_MIN minutes;
# 3. each other level fine-tuned (Liu et al. 2018) from q3, q6 from q5, for FT_MIN minutes at
#    1e-4, then FT_POLISH_MIN minutes at 1e-5, unless its checkpoint exists.
# Each drop of the learning rate buys a step down in loss (5e-4 -> 1e-4 cut q3's train loss by about
# 6 % within 1,600 steps); a fine-tune at 2e-4 plateaued within 2,000 steps, so fine-tunes run at
# 1e-4 and end at 1e-5.
# Then: mlcompress export --runs RUNS/ARCH --arch ARCH --kodak ../shared/data/kodak \
#           --cells bench/results/cells.jsonl
# Every stage checkpoints (and stops cleanly on SIGTERM); re-running the script resumes q3 (each
# re-run adds its minutes again) and trains the levels that have no checkpoint yet.
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
for lr_min in "1e-4 ${DECAY_MIN:-8}" "1e-5 ${POLISH_MIN:-8}"; do
  set -- $lr_min
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda 0.013 --steps 1000000 --lr "$1" --out "$R/q3.pt" \
      --resume --time-limit "$2"
done
for spec in 4:0.025:3 2:0.0067:3 5:0.0483:3 1:0.0035:3 6:0.0932:5; do
  IFS=: read -r q l from <<< "$spec"
  [ -f "$R/q$q.pt" ] && continue
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda "$l" --steps 1000000 --lr 1e-4 --init "$R/q$from.pt" \
      --out "$R/q$q.pt" --time-limit "${FT_MIN:-11}"
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda "$l" --steps 1000000 --lr 1e-5 --out "$R/q$q.pt" \
      --resume --time-limit "${FT_POLISH_MIN:-5}"
done
