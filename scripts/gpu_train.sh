#!/bin/bash
# One lent-GPU training run (docs/GPU.md). Run on the device machine from the repository root:
#   OUT=$OUT MODEL=hyperprior-ctx N=64 M=96 LAMBDA=0.013 MINUTES=7.5 bash scripts/gpu_train.sh
# 1. A smoke test of the same path on a tiny model (about 20 s): train a few steps on DEVICE,
#    write pieces, resume from them, join them into one file. If anything there fails, the run
#    stops before spending the minutes.
# 2. The run: resume the pieces carried in IN (default gpu/in), or start from INIT (weights or
#    checkpoint), or from scratch; train for MINUTES on crops cut on the device from PACK (default
#    gpu/crops.safetensors, made by `mlcompress crops`); write the checkpoint as pieces to $OUT/ck
#    (every CKMIN minutes and at the end; SIGINT at HARD_STOP seconds saves them too) and the log
#    to $OUT/train.log. Those files come back; `mlcompress pieces join` makes them one checkpoint.
# Options: BATCH (16), CROP (256), LR (1e-4), EVAL (1000), CKMIN (2), BF16 (--bf16; empty: off),
# EXTRA (more train options, e.g. --compile), DEVICE (cuda), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder whose files come back}" "${MODEL:?}" "${N:?}" "${M:?}" "${LAMBDA:?}" "${MINUTES:?}"
PY=${PYTHON:-python3}
PACK=${PACK:-gpu/crops.safetensors}
IN=${IN:-gpu/in}
DEVICE=${DEVICE:-cuda}
CROP=${CROP:-256}
BF16=${BF16---bf16}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
run() { "$PY" -m mlcompress.cli "$@"; }
common=(--crops "$PACK" --device "$DEVICE" --crop "$CROP" --quiet $BF16 ${EXTRA:-})

echo "== smoke test: $MODEL N=8 M=8 on $DEVICE"
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
run train "$MODEL" "${common[@]}" --lambda "$LAMBDA" --N 8 --M 8 --batch 2 --steps 3 --eval-every 2 \
    --out "$smoke/ck" --pieces
run train "$MODEL" "${common[@]}" --lambda "$LAMBDA" --N 8 --M 8 --batch 2 --steps 5 --eval-every 2 \
    --out "$smoke/ck" --pieces --resume
run pieces join "$smoke/ck" --out "$smoke/ck.pt"

echo "== run: $MODEL N=$N M=$M lambda=$LAMBDA for $MINUTES min on $DEVICE"
start=()
if [ -f "$IN/manifest.json" ]; then
  mkdir -p "$OUT/ck" && cp "$IN"/manifest.json "$IN"/checkpoint.* "$OUT/ck/"
  start=(--resume)
elif [ -n "${INIT:-}" ]; then
  start=(--init "$INIT")
fi
set +e
timeout -s INT -k 30 "${HARD_STOP:-570}" "$PY" -m mlcompress.cli train "$MODEL" "${common[@]}" "${start[@]}" \
    --out "$OUT/ck" --pieces --N "$N" --M "$M" --lambda "$LAMBDA" --batch "${BATCH:-16}" --lr "${LR:-1e-4}" \
    --steps 1000000000 --time-limit "$MINUTES" --checkpoint-minutes "${CKMIN:-2}" --eval-every "${EVAL:-1000}" \
    2>&1 | tee "$OUT/train.log"
rc=${PIPESTATUS[0]}
set -e
cat "$OUT/ck/manifest.json" 2>/dev/null || echo "no checkpoint pieces were written"
exit "$rc"
