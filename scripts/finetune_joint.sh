#!/bin/bash
# Fine-tune every part of hyperprior-ctx levels together (g_a, g_s, the hyperprior, the context
# model and the Refiner), the way the shipped hyperprior-ctx weights' last stage was made:
#   scripts/finetune_joint.sh LEVEL...        (e.g. scripts/finetune_joint.sh 1 4; MIN=45 by default)
# Each level starts from weights/hyperprior-ctx-q<LEVEL>.safetensors and trains at 5e-5 for MIN
# minutes on batches of 8 crops of 128 x 128, its decoder on rounded latents (--quant round), one
# core. Levels run one after another; run two copies with different levels to use two cores. A
# level whose checkpoint exists resumes (the shipped q3 ran twice: 2,247 steps, then 2,266 more).
# Then: mlcompress export --runs RUNS/joint --arch hyperprior-ctx --kodak ../shared/data/kodak
set -eu
[ $# -ge 1 ] || { echo "usage: scripts/finetune_joint.sh LEVEL..." >&2; exit 2; }
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=${RUNS:-runs}/joint
DATA=${DATA:-../shared/data/train}
LAMBDAS=(x 0.0035 0.0067 0.013 0.025 0.0483 0.0932)
for q in "$@"; do
  INIT=""
  [ -f "$R/q$q.pt" ] || INIT="--init src/mlcompress/weights/hyperprior-ctx-q$q.safetensors"
  $PY -m mlcompress.cli train hyperprior-ctx --data "$DATA" --lambda "${LAMBDAS[$q]}" --steps 1000000 \
      --out "$R/q$q.pt" --refine 24 --batch 8 --crop 128 --lr 5e-5 --threads "${THREADS:-1}" \
      --quant round --time-limit "${MIN:-45}" --resume --quiet $INIT
done
