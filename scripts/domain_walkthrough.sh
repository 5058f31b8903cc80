#!/usr/bin/env bash
# A judge for your own domain, end to end (docs/domain-judges.md):
#   rubric -> synthesize absolute data with a teacher -> pair into relative data -> validate
#   -> train the absolute and the relative expert -> merge them -> evaluate on a held-out domain set.
#
# Runs as written on a CPU at tiny scale (a few minutes on 2 idle cores): the teacher is
# scripts/scripted_teacher.py (rule-based, on 127.0.0.1) and the base model a tiny random
# Mistral-architecture model, so the judge it trains is a smoke test, not a good judge.
# For real data and a real judge set TEACHER/TEACHER_MODEL (any OpenAI-compatible endpoint)
# and BASE (e.g. mistralai/Mistral-7B-Instruct-v0.2), and scale the sizes below up.
# --base DIR (or BASE=DIR) trains from a real pretrained model instead, in its own chat format,
# at a learning rate for a pretrained model (LR, default 1e-4); on a CPU a small one:
#
#   judgeforge models get smollm2-135m-instruct -o models/smollm2     # once (about a minute)
#   TRAIN_STEPS=20 TRAIN_BATCH=4 scripts/domain_walkthrough.sh --base models/smollm2
#
#   scripts/domain_walkthrough.sh                       # everything, tiny, CPU
#   STEPS=data scripts/domain_walkthrough.sh            # only rubric -> data -> validate
#   TEACHER=https://api.openai.com/v1 TEACHER_MODEL=gpt-4o scripts/domain_walkthrough.sh
#
# A rerun resumes: synthesize/pair skip finished rows, finished experts and the merged judge
# are kept, evaluation reuses its cache.  FRESH=1 starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-outputs/domain-walkthrough}
STEPS=${STEPS:-all}                                   # data | all
RUBRIC=${RUBRIC:-examples/domain/rubric.yaml}
INSTRUCTIONS=${INSTRUCTIONS:-examples/domain/instructions.jsonl}
HELDOUT_ABS=${HELDOUT_ABS:-examples/domain/heldout_absolute.jsonl}
HELDOUT_REL=${HELDOUT_REL:-examples/domain/heldout_relative.jsonl}
TEACHER=${TEACHER:-}                                  # empty: start the scripted teacher
TEACHER_MODEL=${TEACHER_MODEL:-scripted}
BASE=${BASE:-}                                        # empty: make a tiny random base model
TRAIN_RECIPE=${TRAIN_RECIPE:-examples/domain/train-tiny.yaml}
TRAIN_STEPS=${TRAIN_STEPS:-8}                         # optimizer steps per expert (tiny scale)
TRAIN_BATCH=${TRAIN_BATCH:-8}
PAIRS=${PAIRS:-10}                                    # pairs per instruction (the Preference Collection: 10)
EVAL_TOKENS=${EVAL_TOKENS:-64}                        # new tokens per judge output (paper: 1024)

LR=${LR:-}                                            # empty: the recipe's (tiny base) or 1e-4 (--base)
while [ $# -gt 0 ]; do
  case "$1" in
    --base) [ $# -ge 2 ] || { echo "domain_walkthrough.sh: --base needs a model folder" >&2; exit 2; }
            BASE=$2; shift 2 ;;
    --base=*) BASE=${1#--base=}; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "domain_walkthrough.sh: unknown option '$1' (options: --base DIR; sizes are environment variables)" >&2
       exit 2 ;;
  esac
done
if [ -n "$BASE" ]; then
  case "$BASE" in
    /*|./*|../*|~*) [ -f "$BASE/config.json" ] || { echo "domain_walkthrough.sh: --base $BASE: no model folder there" \
      "(no config.json); make one with: judgeforge models get smollm2-135m-instruct -o $BASE" >&2; exit 1; } ;;
  esac
  LR=${LR:-1e-4}
fi
LR_ARGS=()
if [ -n "$LR" ]; then LR_ARGS=(--learning_rate "$LR"); fi

JF=${JF:-judgeforge}
say() { printf '\n=== %s\n' "$*"; }

if [ "${FRESH:-0}" = 1 ]; then rm -rf "$OUT"; fi
mkdir -p "$OUT"

# --- 0. a teacher ---------------------------------------------------------------------------
if [ -z "$TEACHER" ]; then
  say "0. starting the scripted teacher (stands in for GPT-4; see scripts/scripted_teacher.py)"
  rm -f "$OUT/teacher.url"
  python scripts/scripted_teacher.py --port-file "$OUT/teacher.url" > "$OUT/teacher.log" 2>&1 &
  TEACHER_PID=$!
  trap 'kill "$TEACHER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ -s "$OUT/teacher.url" ] && break; sleep 0.1; done
  [ -s "$OUT/teacher.url" ] || { echo "the scripted teacher did not start; see $OUT/teacher.log" >&2; exit 1; }
  TEACHER=$(cat "$OUT/teacher.url")
fi

# --- 1. the rubric and the teacher's prompt --------------------------------------------------
say "1. check the rubric and the instructions; show the teacher's prompt (no teacher call)"
$JF data synthesize --rubric "$RUBRIC" --instructions "$INSTRUCTIONS" -o "$OUT/absolute.jsonl" --dry-run | head -n 2

# --- 2. absolute data: a response + feedback for each score 1-5 -----------------------------
say "2. synthesize absolute data (Feedback Collection schema)"
$JF data synthesize --teacher "$TEACHER" --teacher-model "$TEACHER_MODEL" --rubric "$RUBRIC" \
  --instructions "$INSTRUCTIONS" -o "$OUT/absolute.jsonl" --summary "$OUT/absolute.summary.json" -q

# --- 3. relative data: pairs of responses with different scores ------------------------------
say "3. pair into relative data (Preference Collection schema)"
$JF data pair "$OUT/absolute.jsonl" -o "$OUT/relative.jsonl" --pairs-per-instruction "$PAIRS" \
  --teacher "$TEACHER" --teacher-model "$TEACHER_MODEL" --summary "$OUT/relative.summary.json" -q

say "4. validate both files"
$JF data validate "$OUT/absolute.jsonl" "$OUT/relative.jsonl"

if [ "$STEPS" = data ]; then
  say "done (STEPS=data): $OUT/absolute.jsonl, $OUT/relative.jsonl"
  exit 0
fi

# --- 5. the base model -----------------------------------------------------------------------
if [ -z "$BASE" ]; then
  BASE="$OUT/base"
  if [ ! -f "$BASE/config.json" ]; then
    say "5. a tiny random base model (real life: mistralai/Mistral-7B-Instruct-v0.2)"
    python -c "from judgeforge.tiny import make_tiny_model; make_tiny_model('$BASE', seed=0, hidden=128, layers=2)"
  fi
fi

# --- 6. the two experts, from the same base ----------------------------------------------------
for EXPERT in absolute relative; do
  if [ -f "$OUT/$EXPERT-expert/model/config.json" ]; then
    say "6. $EXPERT expert: already trained ($OUT/$EXPERT-expert/model)"
    continue
  fi
  say "6. train the $EXPERT expert"
  $JF train "$TRAIN_RECIPE" --model "$BASE" --expert "$EXPERT" --datasets "$OUT/$EXPERT.jsonl" \
    --output_dir "$OUT/$EXPERT-expert" --max_steps "$TRAIN_STEPS" --per_device_train_batch_size "$TRAIN_BATCH" \
    "${LR_ARGS[@]}"
done

# --- 7. merge: the paper's linear 0.5 / 0.5 ---------------------------------------------------
if [ -f "$OUT/judge/config.json" ]; then
  say "7. merged judge: already there ($OUT/judge)"
else
  say "7. merge the experts (linear, 0.5 / 0.5)"
  $JF merge --method linear --weights 0.5,0.5 "$OUT/absolute-expert/model" "$OUT/relative-expert/model" \
    -o "$OUT/judge"
fi

# --- 8. evaluate on the held-out domain set ---------------------------------------------------
say "8. evaluate the merged judge on the held-out domain set (absolute + relative)"
$JF eval --judge "$OUT/judge" --suite "$HELDOUT_ABS,$HELDOUT_REL" --out "$OUT/eval" \
  --samples_absolute 1 --pair_modes relative --greedy --max_new_tokens "$EVAL_TOKENS" --retries 1 \
  --bootstrap 0 --progress false

say "done: data, experts, judge and report in $OUT (report: $OUT/eval/report.md)"
