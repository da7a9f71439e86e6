#!/bin/bash
# Train hyperprior-ctx's context model for quality levels on top of the shipped hyperprior weights,
# the way the shipped hyperprior-ctx weights were made:
#   scripts/train_ctx.sh LEVEL...            (e.g. scripts/train_ctx.sh 3 4)
# Each level starts from weights/hyperprior-q<LEVEL>.safetensors, keeps its g_a and g_s fixed
# (--freeze transforms: the loss is the rate alone, so a step costs little more than g_a's forward
# pass) and trains h_a, h_s, the factorized prior of z and the context nets at 2e-4 for MIN
# minutes, then at 2e-5 for POLISH_MIN minutes, on 192 x 192 crops. Levels run one after another;
# run two copies with different levels to use two cores. A level whose checkpoint exists resumes.
# Then: mlcompress export --runs RUNS/hyperprior-ctx --arch hyperprior-ctx --kodak ../shared/data/kodak
set -eu
[ $# -ge 1 ] || { echo "usage: scripts/train_ctx.sh LEVEL..." >&2; exit 2; }
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=${RUNS:-runs}/hyperprior-ctx
DATA=${DATA:-../shared/data/train}
LAMBDAS=(x 0.0035 0.0067 0.013 0.025 0.0483 0.0932)
COMMON="--data $DATA --N 64 --M 96 --batch 8 --crop 192 --threads ${THREADS:-1} --freeze transforms --quiet"
for q in "$@"; do
  l=${LAMBDAS[$q]}
  INIT=""
  [ -f "$R/q$q.pt" ] || INIT="--init src/mlcompress/weights/hyperprior-q$q.safetensors"
  $PY -m mlcompress.cli train hyperprior-ctx $COMMON --lambda "$l" --steps 1000000 --lr 2e-4 \
      --out "$R/q$q.pt" --resume $INIT --time-limit "${MIN:-18}"
  $PY -m mlcompress.cli train hyperprior-ctx $COMMON --lambda "$l" --steps 1000000 --lr 2e-5 \
      --out "$R/q$q.pt" --resume --time-limit "${POLISH_MIN:-4}"
done
