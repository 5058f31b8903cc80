#!/usr/bin/env bash
# Reproduce Prometheus 2 (7B) end to end: from Mistral-7B-Instruct-v0.2 and the two collections on
# the hub to the final report beside the paper's numbers.
#
#   scripts/reproduce_prometheus2.sh [--dry-run] [--joint] [--help]
#
# Stages (each skipped when its finished output exists, so a rerun resumes where it stopped):
#   1. train the absolute expert   (configs/train/prometheus2-7b-absolute.yaml, Feedback Collection)
#   2. train the relative expert   (configs/train/prometheus2-7b-relative.yaml, Preference Collection)
#   3. with --joint: the joint-training control (configs/train/prometheus2-7b-joint.yaml)
#   4. merge the experts           (configs/merge/prometheus2-7b-linear.yaml: linear, 1.0/1.0 normalised)
#   5. evaluate every judge on the paper's eight benchmarks (judgeforge eval --suite paper),
#      split over the GPUs with --num-shards and merged with 'judgeforge eval report'
#   6. the ablation report beside the paper's Table 5 ($OUT/ablation.md)
#
# --dry-run prints every command without running anything.
#
# Variables (defaults in brackets):
#   MODEL [mistralai/Mistral-7B-Instruct-v0.2]     base model (hub id or folder)
#   ABS_DATA [prometheus-eval/Feedback-Collection] REL_DATA [prometheus-eval/Preference-Collection]
#   OUT [runs/prometheus2-7b]                      everything goes here
#   GPUS [8]                                        GPUs per machine (0: CPU)
#   HOSTFILE, NNODES, NODE_RANK, MASTER_ADDR        several machines (see scripts/train.sh)
#   ABS_RECIPE, REL_RECIPE, JOINT_RECIPE, MERGE_RECIPE   recipe files (defaults above)
#   TRAIN_ARGS  extra '--key value' overrides for every training run (e.g. "--pack_tokens 16384")
#   MERGE_ARGS  extra arguments for 'judgeforge merge' (e.g. "--method dare_linear --density 0.9 --base $MODEL")
#   EVAL_SUITE [paper]   DATA_DIR [none: fetched]   EVAL_ARGS (e.g. "--limit 20")
#   EVAL_EXPERTS [1]     also evaluate the two experts (the ablation's single-format rows)
#   JUDGEFORGE [judgeforge]   the command to call
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
JOINT=${JOINT:-0}
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --joint) JOINT=1 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "reproduce_prometheus2.sh: unknown option '$arg'; see --help" >&2; exit 2 ;;
  esac
done

MODEL=${MODEL:-mistralai/Mistral-7B-Instruct-v0.2}
ABS_DATA=${ABS_DATA:-prometheus-eval/Feedback-Collection}
REL_DATA=${REL_DATA:-prometheus-eval/Preference-Collection}
OUT=${OUT:-runs/prometheus2-7b}
GPUS=${GPUS:-8}
ABS_RECIPE=${ABS_RECIPE:-configs/train/prometheus2-7b-absolute.yaml}
REL_RECIPE=${REL_RECIPE:-configs/train/prometheus2-7b-relative.yaml}
JOINT_RECIPE=${JOINT_RECIPE:-configs/train/prometheus2-7b-joint.yaml}
MERGE_RECIPE=${MERGE_RECIPE:-configs/merge/prometheus2-7b-linear.yaml}
EVAL_SUITE=${EVAL_SUITE:-paper}
EVAL_EXPERTS=${EVAL_EXPERTS:-1}
JUDGEFORGE=${JUDGEFORGE:-judgeforge}
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
read -r -a MERGE_EXTRA <<< "${MERGE_ARGS:-}"
read -r -a EVAL_EXTRA <<< "${EVAL_ARGS:-}"
EVAL_DATA=()
[[ -n "${DATA_DIR:-}" ]] && EVAL_DATA=(--data-dir "$DATA_DIR")

run() {  # print the command; run it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [[ $DRY_RUN == 0 ]]; then "$@"; fi
}
skip() { echo "= skip $1: $2 exists"; }

train() {  # train NAME RECIPE EXPERT DATASETS
  local name=$1 recipe=$2 expert=$3 datasets=$4
  if [[ -f "$OUT/$name/model/config.json" ]]; then skip "$name expert" "$OUT/$name/model"; return; fi
  run env GPUS="$GPUS" scripts/train.sh "$recipe" --model "$MODEL" --expert "$expert" \
    --datasets "$datasets" --output_dir "$OUT/$name" "${TRAIN_EXTRA[@]}"
}

evaluate() {  # evaluate NAME JUDGE_DIR
  local name=$1 judge=$2 dest="$OUT/eval/$1"
  if [[ -f "$dest/report.json" ]]; then skip "evaluation of $name" "$dest/report.json"; return; fi
  if [[ "$GPUS" -le 1 ]]; then
    run "$JUDGEFORGE" eval --judge "$judge" --suite "$EVAL_SUITE" --out "$dest" "${EVAL_DATA[@]}" "${EVAL_EXTRA[@]}"
    return
  fi
  # one shard per GPU, then one report from all the shards' caches
  local pids=() i
  for ((i = 0; i < GPUS; i++)); do
    local cmd=(env CUDA_VISIBLE_DEVICES=$i "$JUDGEFORGE" eval --judge "$judge" --suite "$EVAL_SUITE"
      --out "$dest/shard-$i" --num-shards "$GPUS" --shard "$i" --no-progress "${EVAL_DATA[@]}" "${EVAL_EXTRA[@]}")
    if [[ $DRY_RUN == 1 ]]; then run "${cmd[@]}"; else run "${cmd[@]}" & pids+=($!); fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed shard stops the script
  local shards=()
  for ((i = 0; i < GPUS; i++)); do shards+=("$dest/shard-$i"); done
  run "$JUDGEFORGE" eval report "${shards[@]}" --out "$dest" "${EVAL_DATA[@]}"
}

echo "== Prometheus 2 reproduction: MODEL=$MODEL OUT=$OUT GPUS=$GPUS$([[ $DRY_RUN == 1 ]] && echo ' (dry run)')"
[[ $DRY_RUN == 1 ]] || mkdir -p "$OUT"

echo "== 1-3. experts"
train absolute "$ABS_RECIPE" absolute "[$ABS_DATA]"
train relative "$REL_RECIPE" relative "[$REL_DATA]"
if [[ $JOINT == 1 ]]; then train joint "$JOINT_RECIPE" joint "[$ABS_DATA,$REL_DATA]"; fi

echo "== 4. merge"
if [[ -f "$OUT/merged/config.json" ]]; then skip merge "$OUT/merged"; else
  run "$JUDGEFORGE" merge "$MERGE_RECIPE" --models "$OUT/absolute/model,$OUT/relative/model" \
    --output "$OUT/merged" "${MERGE_EXTRA[@]}"
fi

echo "== 5. evaluation ($EVAL_SUITE)"
evaluate merged "$OUT/merged"
RUNS=(--run "merged=$OUT/eval/merged")
if [[ $EVAL_EXPERTS == 1 ]]; then
  evaluate absolute "$OUT/absolute/model"
  evaluate relative "$OUT/relative/model"
  RUNS+=(--run "absolute=$OUT/eval/absolute" --run "relative=$OUT/eval/relative")
fi
if [[ $JOINT == 1 ]]; then
  evaluate joint "$OUT/joint/model"
  RUNS+=(--run "joint=$OUT/eval/joint")
fi

echo "== 6. report"
run "$JUDGEFORGE" eval ablation "${RUNS[@]}" -o "$OUT/ablation.md"
echo "== done: $OUT/ablation.md, $OUT/eval/*/report.md"
