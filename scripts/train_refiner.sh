#!/bin/bash
# Add a Refiner (nn.models.Refiner: a 4-layer residual CNN ending g_s) to shipped learned weights,
# the way the shipped Refiners were made:
#   scripts/train_refiner.sh ARCH LEVEL...     (e.g. scripts/train_refiner.sh hyperprior-ctx 3 4)
# The first level given without a Refiner to start from trains one from zero (its last conv starts
# at zero, so step 0 decodes exactly as the shipped weights) at 1e-3 for BASE_MIN minutes, then
# 1e-4 for POLISH_MIN; every level after it starts from the Refiner just exported for the level
# before (--init-refiner) at 3e-4 for FT_MIN minutes, then 1e-4 for FT_POLISH_MIN. Everything but
# the Refiner stays frozen (--freeze all-but-refiner) and it trains on the decoder's rounded
# latents (--quant round), so every file keeps its streams and only the decoded image changes.
# REFINER_FROM=ARCH2 instead starts every level from ARCH2's Refiner of the same level (FT_MIN, then
# FT_POLISH_MIN): a Refiner carries over between models whose g_s are alike (hyperprior-ctx started
# from hyperprior's g_a and g_s; since its joint fine-tuning they differ slightly).
# Each level is exported into the package's weights as soon as it is done (same name, new hash:
# files made with the old weights no longer decode, and the bench measures the level again).
# Then: mlcompress export --runs RUNS/ARCH-refiner --arch ARCH --kodak ../shared/data/kodak \
#           --cells bench/results/cells.jsonl
set -eu
ARCH=${1:?usage: scripts/train_refiner.sh ARCH LEVEL...}
shift
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=${RUNS:-runs}/$ARCH-refiner
W=${WEIGHTS:-src/mlcompress/weights}
DATA=${DATA:-../shared/data/train}
LAMBDAS=(x 0.0035 0.0067 0.013 0.025 0.0483 0.0932)
COMMON="--data $DATA --steps 1000000 --refine ${CHANNELS:-24} --quant round --freeze all-but-refiner
        --batch 16 --crop 64 --threads ${THREADS:-1} --quiet"
prev=${FROM:-}
for q in "$@"; do
  l=${LAMBDAS[$q]}
  [ -n "${REFINER_FROM:-}" ] && prev=$W/$REFINER_FROM-q$q.safetensors
  if [ -z "$prev" ]; then
    first=(--lr 1e-3 --time-limit "${BASE_MIN:-65}") polish=${POLISH_MIN:-8} from=()
  else
    first=(--lr 3e-4 --time-limit "${FT_MIN:-12}") polish=${FT_POLISH_MIN:-4} from=(--init-refiner "$prev")
  fi
  init=()  # a level whose checkpoint exists resumes it (each re-run adds its minutes again)
  [ -f "$R/q$q.pt" ] || init=(--init "$W/$ARCH-q$q.safetensors" "${from[@]}")
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda "$l" --out "$R/q$q.pt" --resume "${init[@]}" "${first[@]}"
  $PY -m mlcompress.cli train "$ARCH" $COMMON --lambda "$l" --out "$R/q$q.pt" --resume --lr 1e-4 \
      --time-limit "$polish"
  $PY -m mlcompress.cli export "$R/q$q.pt" --name "$ARCH-q$q" --out-dir "$W" > /dev/null
  prev=$W/$ARCH-q$q.safetensors
done
