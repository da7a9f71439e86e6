#!/bin/bash
# Set the shipped weights aside before a device call, and put them back after (docs/GPU.md).
# The device tool sends the working tree (tracked and untracked-not-ignored files) and refuses
# one over 64 MiB; the shipped weights alone are more than that, and a training run on the
# device needs none of them except the one it starts from.
#   bash scripts/gpu_slim.sh aside [KEEP...]   move every weights file but KEEP (file names, e.g.
#                                              hyperprior-ctx-q3.safetensors) into .slim/ (ignored)
#   bash scripts/gpu_slim.sh back              move them back (git status is clean again)
#   bash scripts/gpu_slim.sh size              bytes that would travel now
set -euo pipefail
cd "$(dirname "$0")/.."
W=src/mlcompress/weights
size() {
  # files set aside are still in git's index: stat skips them (and xargs then exits non-zero)
  { git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s 2>/dev/null || true; } | awk '{s+=$1} END {printf "%.1f MiB would travel (limit 64 MiB, carry included)\n", s/1048576}'
}
case "${1:-}" in
  aside)
    shift
    grep -qxF '/.slim/' .git/info/exclude 2>/dev/null || echo '/.slim/' >> .git/info/exclude
    mkdir -p .slim
    for f in "$W"/*.safetensors; do
      name=$(basename "$f")
      keep=no
      for k in "$@"; do [ "$k" = "$name" ] && keep=yes; done
      [ $keep = yes ] || mv "$f" .slim/
    done
    size ;;
  back)
    [ -d .slim ] && find .slim -maxdepth 1 -name '*.safetensors' -exec mv -n {} "$W"/ \;
    git status --short -- "$W" | grep . && { echo "weights still differ from git (see above)" >&2; exit 1; }
    echo "weights back; git status clean for $W" ;;
  size) size ;;
  *) sed -n 2,10p "$0" >&2; exit 2 ;;
esac
