#!/usr/bin/env bash
# GPU acceptance: every documented user command at 7B on one GPU, as README.md and docs/*.md show it,
# with the checks a user would make (docs/gpu-acceptance.md says what and why).
#
#   bash scripts/gpu/acceptance.sh part1|part2|all|GROUP,GROUP... [--smoke] [--dry-run]
#
#   part1   = train,merge,serve,repro
#     train   full fine-tuning and LoRA (SIGKILL and resume), each output loads and generates
#     merge   linear, dare_linear and ties merges of the two trained experts, then a sweep (needs train)
#     serve   judgeforge serve + the README curls + serve_load.py with 16 and 64 clients
#     repro   scripts/reproduce_prometheus2.sh at reduced size: killed, rerun, run again
#   part2   = eval: the issue's exact command, then the four shared benchmark files complete with the
#           paper's protocol (SIGKILL midway, rerun, nothing generated twice)
#   --smoke the same command lines at tiny scale on the CPU (a tiny model, few steps, --limit)
#   --dry-run  print the plan only
#
# Results go to $OUT (default runs/acceptance): summary.md, summary.json, results.tsv, log-<part>.txt
# (every step's output, tail-trimmed to 8 MiB).  Big folders go to $ACCEPT_WORK (default /tmp/jf-accept).
# Variables: PART_BUDGET_S [540] (no step starts, and running ones are stopped, after this many seconds),
# FULL_DS [the recipe's configs/deepspeed/zero3.json] (--deepspeed for full fine-tuning), PYTHON [python3],
# DATA [.carry/shared/data/prometheus-eval or ../shared/data/prometheus-eval], TOK [.carry/tok-mistral-v1 or
# mistral-v1], SERVE_PORT [8765; smoke: a free port].
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

PART=${1:-}
shift || true
SMOKE=0 DRY=0
for a in "$@"; do
  case $a in --smoke) SMOKE=1 ;; --dry-run) DRY=1 ;; *) echo "acceptance.sh: unknown option '$a'" >&2; exit 2 ;; esac
done
case $PART in
  part1) GROUPS_=(train merge serve repro) ;;
  part2) GROUPS_=(eval) ;;
  all) GROUPS_=(train merge serve repro eval) ;;
  *) IFS=, read -r -a GROUPS_ <<< "$PART" ;;
esac
for g in "${GROUPS_[@]}"; do
  case $g in train|merge|serve|repro|eval) ;; *) sed -n 2,23p "$0"; exit 2 ;; esac
done

OUT=${OUT:-runs/acceptance}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
W=${ACCEPT_WORK:-/tmp/jf-accept}
PY=${PYTHON:-python3}
export PYTHON=$PY
mkdir -p "$W/bin" "$W/logs"
# the console script `pip install -e .` would give; `python -m judgeforge` where the project is not installed
printf '#!/bin/sh\nexec %q -m judgeforge "$@"\n' "$PY" > "$W/bin/judgeforge"
# and `python` for the commands typed with it (the GPU image has only python3)
printf '#!/bin/sh\nexec %q "$@"\n' "$PY" > "$W/bin/python"
chmod +x "$W/bin/judgeforge" "$W/bin/python"
export PATH="$W/bin:$PATH" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
for d in .carry/shared/data/prometheus-eval ../shared/data/prometheus-eval; do
  [[ -z "${DATA:-}" && -f $d/vicuna_eval.json ]] && DATA=$d
done
DATA=${DATA:-.carry/shared/data/prometheus-eval}
if [[ -z "${TOK:-}" ]]; then if [[ -d .carry/tok-mistral-v1 ]]; then TOK=.carry/tok-mistral-v1; else TOK=mistral-v1; fi; fi
TOOLS=(python3 scripts/gpu/accept_tools.py)
TOOLS[0]=$PY
BUDGET=${PART_BUDGET_S:-$([[ $SMOKE == 1 ]] && echo 5400 || echo 540)}
SKIPPED=" "
RES=$OUT/results.tsv
: > "$RES"

# ----------------------------------------------------------------------------- sizes: 7B on the GPU, tiny here
if [[ $SMOKE == 1 ]]; then
  ROWS=(--n 48 --scale 0.125 --max-length 512)
  TRAIN_SMALL=(--bf16 false --max_length 512)
  LIMIT=(--limit 3)
  EVAL_TOKENS=16
  SWEEP_LIMIT=2
  CLIENTS=(4 8) LOAD_S=4
  T=3  # timeouts x3 on 2 slow shared cores
else
  ROWS=(--n 64)
  TRAIN_SMALL=()
  LIMIT=()
  EVAL_TOKENS=256
  SWEEP_LIMIT=8
  CLIENTS=(16 64) LOAD_S=15
  T=1
fi
RECIPE=configs/train/prometheus2-7b-absolute.yaml
BASE=$W/base FULL=$W/full LORA=$W/lora

rmd() { [[ $DRY == 1 ]] || rm -rf "$@"; }
log_of() { echo "$W/logs/$1.log"; }
now() { date +%s; }
since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
STARTED=$(now)
DEADLINE=$((STARTED + BUDGET))
CUR_PART=setup

gpu_poll() {  # gpu_poll FILE: sample used GPU memory (MiB) every 0.5 s until killed
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  exec nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$1" 2>/dev/null
}
peak_of() { [[ -s $1 ]] && sort -n "$1" | tail -1 | tr -dc 0-9 || echo na; }

# step NAME TIMEOUT CMD... : run CMD (its output to logs/NAME.log), record rc, wall seconds, peak GPU memory
step() {
  local name=$1 t=$(( $2 * T )); shift 2
  local left=$(( DEADLINE - $(now) )) cmd
  cmd=$(printf '%q ' "$@")
  echo "=== [$name] $(date +%T) $cmd" | tee -a "$PLOG"
  if [[ $DRY == 1 ]]; then return 0; fi
  if (( left < 10 )); then
    printf 'step\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$CUR_PART" 125 0 na "SKIPPED (part budget spent) $cmd" >> "$RES"
    echo "    skipped: the part's ${BUDGET}s budget is spent" | tee -a "$PLOG"
    SKIPPED+="$name "
    return 125
  fi
  (( t > left )) && t=$left
  local mem=$W/logs/$name.mem t0 rc poll=
  gpu_poll "$mem" & poll=$!
  t0=$(date +%s%N)
  timeout -k 10 "$t" "$@" > "$(log_of "$name")" 2>&1
  rc=$?
  kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null
  local wall
  wall=$(since "$t0")
  [[ $rc == 124 || $rc == 137 ]] && echo "    TIMEOUT after ${t}s" >> "$(log_of "$name")"
  tail -c 400000 "$(log_of "$name")" >> "$PLOG"
  printf 'step\t%s\t%s\t%s\t%.1f\t%s\t%s\n' "$name" "$CUR_PART" "$rc" "$wall" "$(peak_of "$mem")" "$cmd" >> "$RES"
  echo "    rc $rc, $(printf %.1f "$wall") s, peak GPU $(peak_of "$mem") MiB" | tee -a "$PLOG"
  return "$rc"
}

# check STEP NAME CMD... : a pass/fail check; its last output line is the detail
check() {
  local name=$1 what=$2; shift 2
  [[ $DRY == 1 ]] && { echo "    check $what: $*"; return 0; }
  if [[ $SKIPPED == *" $name "* ]]; then
    printf 'check\t%s\t%s\tskip\t%s\n' "$name" "$what" "not run: the step was skipped" >> "$RES"
    return 125
  fi
  local out rc
  out=$("$@" 2>&1); rc=$?
  echo "$out" >> "$PLOG"
  local detail
  detail=$(echo "$out" | tail -1 | tr '\t' ' ' | cut -c1-400)
  printf 'check\t%s\t%s\t%s\t%s\n' "$name" "$what" "$([[ $rc == 0 ]] && echo 1 || echo 0)" "$detail" >> "$RES"
  echo "    $([[ $rc == 0 ]] && echo PASS || echo FAIL) $what: $detail" | tee -a "$PLOG"
  return "$rc"
}
ok() { "$@"; }  # readability: check NAME WHAT ok test ...
has() { grep -q -- "$2" "$1" && echo "found '$2' in $(basename "$1")" || { echo "no '$2' in $1"; return 1; }; }
rc_is() { [[ $1 == "$2" ]] && echo "rc $1" || { echo "rc $1, want $2"; return 1; }; }

# bg_until NAME TIMEOUT TEST CMD... : run CMD in the background, SIGKILL it once `eval TEST` is true
bg_until() {
  local name=$1 t=$(( $2 * T )) test=$3; shift 3
  local cmd; cmd=$(printf '%q ' "$@")
  echo "=== [$name] $(date +%T) $cmd   (SIGKILL once: $test)" | tee -a "$PLOG"
  [[ $DRY == 1 ]] && return 0
  local left=$(( DEADLINE - $(now) ))
  (( left < 10 )) && { printf 'step\t%s\t%s\t125\t0\tna\tSKIPPED %s\n' "$name" "$CUR_PART" "$cmd" >> "$RES"; SKIPPED+="$name "; return 125; }
  (( t > left )) && t=$left
  local mem=$W/logs/$name.mem poll t0 pid rc=0 end
  gpu_poll "$mem" & poll=$!
  t0=$(date +%s%N)
  "$@" > "$(log_of "$name")" 2>&1 &
  pid=$!
  end=$(( $(now) + t ))
  while kill -0 "$pid" 2>/dev/null; do
    if eval "$test"; then kill_tree "$pid"; echo "    SIGKILL at $(date +%T)" >> "$(log_of "$name")"; break; fi
    if (( $(now) > end )); then kill_tree "$pid"; echo "    TIMEOUT" >> "$(log_of "$name")"; rc=124; break; fi
    sleep 0.5
  done
  wait "$pid"; local prc=$?
  [[ $rc == 0 ]] && rc=$prc
  kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null
  local wall; wall=$(since "$t0")
  tail -c 200000 "$(log_of "$name")" >> "$PLOG"
  printf 'step\t%s\t%s\t%s\t%.1f\t%s\t%s\n' "$name" "$CUR_PART" "$rc" "$wall" "$(peak_of "$mem")" "$cmd" >> "$RES"
  echo "    rc $rc (137 = killed as planned), $(printf %.1f "$wall") s" | tee -a "$PLOG"
}

descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
kill_tree() {  # SIGKILL a process and everything it started (a script's children too), all at once
  local all; all="$1 $(descendants "$1")"
  kill -KILL $all 2>/dev/null
}

newest_ckpt() { local n=0 d; for d in "$1"/checkpoint-*/.complete; do [[ -f $d ]] || continue; d=${d%/.complete}; d=${d##*-}; (( d > n )) && n=$d; done; echo "$n"; }

make_base() {  # make_base DIR [make_judge args]: the 7B random judge (GPU) or a tiny one (smoke)
  local dir=$1; shift
  [[ -f $dir/config.json ]] && return 0
  if [[ $SMOKE == 1 ]]; then
    step "make-$(basename "$dir")" 120 "$PY" -c "from judgeforge.tiny import make_tiny_model; make_tiny_model('$dir', hidden=64, layers=2, tokenizer='$TOK')"
  else
    step "make-$(basename "$dir")" 120 "$PY" scripts/gpu/make_judge.py --out "$dir" --tokenizer "$TOK" "$@"
  fi
}

# ============================================================================= part 1
grp_train() {
  make_base "$BASE"
  step rows 120 "${TOOLS[@]}" rows --out "$W/rows.jsonl" --tokenizer "$TOK" "${ROWS[@]}"

  # --- train: full fine-tuning (docs/training.md: judgeforge train RECIPE [--key value ...])
  rmd "$FULL"
  local full_ds=()
  [[ -n "${FULL_DS:-}" ]] && full_ds=(--deepspeed "$FULL_DS")
  [[ $SMOKE == 1 ]] && full_ds=(--deepspeed configs/deepspeed/zero3.json)
  step train-full 300 judgeforge train "$RECIPE" --model "$BASE" --datasets "$W/rows.jsonl" --output_dir "$FULL" \
    --max_steps 3 --global_batch_size 8 --save_steps 0 --logging_steps 1 --log_rows true "${full_ds[@]}" "${TRAIN_SMALL[@]}"
  local rc=$?
  if [[ $rc != 0 ]] && grep -q -i "out of memory" "$(log_of train-full)"; then
    echo "    out of GPU memory: again with optimizer states in CPU memory (scripts/gpu/zero3_offload_optimizer.json)" | tee -a "$PLOG"
    rmd "$FULL"
    step train-full-offload 300 judgeforge train "$RECIPE" --model "$BASE" --datasets "$W/rows.jsonl" --output_dir "$FULL" \
      --max_steps 3 --global_batch_size 8 --save_steps 0 --logging_steps 1 --log_rows true \
      --deepspeed scripts/gpu/zero3_offload_optimizer.json "${TRAIN_SMALL[@]}"
    rc=$?
  fi
  check train-full "rc 0" rc_is "$rc" 0
  check train-full "3 optimizer steps logged" ok has "$FULL/log.jsonl" '"step": 3'
  check train-full "model/ loads with AutoModelForCausalLM and generates" "${TOOLS[@]}" generate "$FULL/model"

  # --- train: LoRA, SIGKILL after checkpoint 2, the same command again resumes
  rmd "$LORA"
  local lora=(judgeforge train "$RECIPE" --model "$BASE" --datasets "$W/rows.jsonl" --output_dir "$LORA"
    --deepspeed null --lora '{r: 16, alpha: 32, dropout: 0.05}' --max_steps 4 --global_batch_size 8
    --save_steps 1 --logging_steps 1 --log_rows true "${TRAIN_SMALL[@]}")
  bg_until train-lora-killed 240 "[[ -f $LORA/checkpoint-2/.complete ]]" "${lora[@]}"
  local k nrows; k=$(newest_ckpt "$LORA")
  nrows=$(cat "$LORA/rows-rank0.jsonl" 2>/dev/null | wc -l)
  echo "    newest complete checkpoint after the kill: $k" | tee -a "$PLOG"
  check train-lora-killed "killed with a complete checkpoint and no model/" ok bash -c "[[ $k -ge 2 && ! -e $LORA/model ]] && echo 'checkpoint-$k, no model/' || { echo 'checkpoint-$k, model/ exists or no checkpoint'; exit 1; }"
  step train-lora-resume 240 "${lora[@]}"
  check train-lora-resume "rc 0" rc_is $? 0
  check train-lora-resume "resumed at step $((k + 1)), same rows" "${TOOLS[@]}" resume "$LORA" --killed-at "$k" --lines-before "$nrows"
  check train-lora-resume "same data order as the full fine-tuning run (seed 42)" "${TOOLS[@]}" same-rows "$FULL" "$LORA"
  check train-lora-resume "model/ (LoRA merged) loads and generates" "${TOOLS[@]}" generate "$LORA/model"
  rmd "$LORA"/checkpoint-*
}

grp_merge() {
  # --- merge (docs/merging.md): two 7B experts (full fine-tune and LoRA of the same base)
  df -h "$W" | tail -1 >> "$PLOG"
  local m=$W/merged
  rmd "$m"
  step merge-linear 150 judgeforge merge --weights 0.5,0.5 --dtype bf16 "$FULL/model" "$LORA/model" -o "$m"
  check merge-linear "rc 0" rc_is $? 0
  check merge-linear "fast path, model card" ok has "$m/README.md" "linear"
  rmd "$m"
  step merge-dare-linear 200 judgeforge merge --method dare_linear --base "$BASE" --weights 0.5,0.5 --density 0.9 --seed 42 \
    "$FULL/model" "$LORA/model" -o "$m"
  check merge-dare-linear "rc 0" rc_is $? 0
  check merge-dare-linear "config + card written" ok has "$m/README.md" "dare_linear"
  rmd "$m"
  step merge-ties 200 judgeforge merge --method ties --base "$BASE" --weights 0.5,0.5 --density 0.9 \
    "$FULL/model" "$LORA/model" -o "$m"
  check merge-ties "rc 0" rc_is $? 0
  check merge-ties "config + card written" ok has "$m/README.md" "ties"
  rmd "$m"

  # --- sweep (README): three alphas on two benchmarks, in memory
  rmd "$W/sweep"
  step sweep 200 judgeforge sweep --absolute "$FULL/model" --relative "$LORA/model" \
    --alphas 0.2,0.5,0.8 --methods linear --suite vicuna,hhh --data-dir "$DATA" --limit "$SWEEP_LIMIT" \
    --max-new-tokens 64 --retries 0 --no-progress --out "$W/sweep"
  check sweep "rc 0" rc_is $? 0
  check sweep "sweep.md has the three points" ok bash -c "n=\$(grep -c -E '^\| *linear' '$W/sweep/sweep.md'); cat '$W/sweep/sweep.md' >&2; [[ \$n -ge 3 ]] && echo \"\$n rows\" || { echo \"\$n rows in sweep.md\"; exit 1; }"
  rmd "$FULL/model" "$LORA/model"
}

load_step() {  # load_step CLIENTS URL
  step "serve-load-$1" 120 "$PY" scripts/bench/serve_load.py --url "$2" --clients "$1" --duration "$LOAD_S" --out "$W/serve-load-$1"
}

grp_serve() {
  make_base "$BASE"
  local port=${SERVE_PORT:-8765}
  [[ $SMOKE == 1 && -z "${SERVE_PORT:-}" ]] && port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  local url=http://127.0.0.1:$port
  echo "=== [serve] judgeforge serve --judge $BASE --port $port --max-new-tokens 64 --retries 0" | tee -a "$PLOG"
  local c
  if [[ $DRY == 1 ]]; then for c in "${CLIENTS[@]}"; do load_step "$c" "$url"; done; return 0; fi
  (( DEADLINE - $(now) < 30 )) && { printf 'step\tserve\t%s\t125\t0\tna\tSKIPPED\n' "$CUR_PART" >> "$RES"; return; }  # its checks never run
  local mem=$W/logs/serve.mem poll t0 spid
  gpu_poll "$mem" & poll=$!
  t0=$(date +%s%N)
  judgeforge serve --judge "$BASE" --port "$port" --max-new-tokens 64 --retries 0 > "$(log_of serve)" 2>&1 &
  spid=$!
  local up=0 i
  for ((i = 0; i < 240 * T; i++)); do
    "$PY" -c "import urllib.request; urllib.request.urlopen('$url/health', timeout=2)" >/dev/null 2>&1 && { up=1; break; }
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.5
  done
  check serve "server answers /health" bash -c "[[ $up == 1 ]] && echo 'answered after $i polls of 0.5 s' || { echo 'no answer from /health'; exit 1; }"
  if [[ $up == 1 ]]; then
    check serve "README curl /grade/absolute" ok bash -c "curl -s -f $url/grade/absolute -d '{\"rubric\": \"helpfulness\", \"items\": [{\"instruction\": \"What is the capital of France?\", \"response\": \"Paris.\"}]}' | grep -q '\"results\"' && echo 200"
    check serve "README curl /grade/relative" ok bash -c "curl -s -f $url/grade/relative -d '{\"rubric\": \"factual_validity\", \"items\": [{\"instruction\": \"What is 7 x 8?\", \"response_a\": \"56\", \"response_b\": \"54\"}]}' | grep -q '\"results\"' && echo 200"
    check serve "README curl /reward" ok bash -c "curl -s -f $url/reward -d '{\"items\": [{\"prompt\": \"Write a haiku about rain.\", \"response\": \"Soft rain on the roof\"}]}' | grep -q '\"rewards\"' && echo 200"
    for c in "${CLIENTS[@]}"; do
      load_step "$c" "$url"
      check "serve-load-$c" "0 lost / duplicated / swapped answers, faults answered 4xx" rc_is $? 0
      check "serve-load-$c" "items/s, p50, p99" "$PY" -c "import json; r=json.load(open('$W/serve-load-$c/serve_load.json'))['phases'][0]; print(f\"{r['items_per_s']:.1f} items/s, p50 {r['latency_p50_ms']:.0f} ms, p99 {r['latency_p99_ms']:.0f} ms, {r['items']} items, mean batch {r['mean_batch']:.1f}\")"
    done
  fi
  kill -TERM "$spid" 2>/dev/null
  local src=0
  for ((i = 0; i < 80; i++)); do kill -0 "$spid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$spid" 2>/dev/null && { kill -KILL "$spid"; src=killed; }
  wait "$spid"; [[ $src == 0 ]] && src=$?
  kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null
  tail -c 100000 "$(log_of serve)" >> "$PLOG"
  printf 'step\tserve\t%s\t%s\t%.1f\t%s\t%s\n' "$CUR_PART" "$src" "$(since "$t0")" "$(peak_of "$mem")" \
    "judgeforge serve --judge $BASE --port $port --max-new-tokens 64 --retries 0" >> "$RES"
  check serve "SIGTERM: exit 0" rc_is "$src" 0
}

grp_repro() {
  # the reproduction script at reduced size: a tiny Mistral (hidden 128, 2 layers; 64 in smoke) on the GPU,
  # mini data: every stage and its skipping are the point here, the 7B stages ran above
  local rb=$W/repro-base r=$W/repro
  rmd "$r"
  if [[ $SMOKE == 1 ]]; then make_base "$rb"; else
    step make-repro-base 120 "$PY" -c "from judgeforge.tiny import make_tiny_model; make_tiny_model('$rb', hidden=128, layers=2, tokenizer='$TOK')"
  fi
  step data-mini 60 judgeforge data mini -o "$W/mini" --force
  local envs=(env MODEL="$rb" ABS_DATA="$W/mini/absolute_train.jsonl" REL_DATA="$W/mini/relative_train.jsonl"
    OUT="$r" GPUS=1 EVAL_SUITE=vicuna,hhh DATA_DIR="$DATA"
    TRAIN_ARGS="--max_steps 2 --global_batch_size 4 --save_steps 1 --logging_steps 1 ${TRAIN_SMALL[*]}"
    EVAL_ARGS="--limit 2 --max_new_tokens 16 --retries 0 --bootstrap 0")
  bg_until repro-killed 200 "[[ -f $r/absolute/model/config.json ]]" "${envs[@]}" scripts/reproduce_prometheus2.sh
  step repro-rerun 300 "${envs[@]}" scripts/reproduce_prometheus2.sh
  check repro-rerun "rc 0" rc_is $? 0
  check repro-rerun "the finished absolute expert was skipped" ok has "$(log_of repro-rerun)" "= skip absolute expert"
  check repro-rerun "ablation.md written" ok has "$r/ablation.md" "merged"
  step repro-again 120 "${envs[@]}" scripts/reproduce_prometheus2.sh
  check repro-again "every stage skipped" ok bash -c "n=\$(grep -c '^= skip' '$(log_of repro-again)'); [[ \$n -ge 6 ]] && echo \"\$n stages skipped\" || { echo \"\$n stages skipped, want 6\"; exit 1; }"
}

# ============================================================================= part 2
grp_eval() {
  make_base "$BASE"
  rmd runs/e2e
  local e2e=(python -m judgeforge eval --judge "$BASE" --suite vicuna,hhh --data-dir "$DATA" --max_new_tokens "$EVAL_TOKENS"
    --retries 0 --bootstrap 0 --progress false --out runs/e2e "${LIMIT[@]}")
  step eval-e2e 330 "${e2e[@]}"
  check eval-e2e "rc 0 (the issue's command)" rc_is $? 0
  check eval-e2e "report complete" "${TOOLS[@]}" report runs/e2e --benchmarks vicuna,hhh
  check eval-e2e "cache" "${TOOLS[@]}" cache runs/e2e --count-file "$W/n0"
  # the paper's protocol on the four files, in the same folder: vicuna and hhh come from the cache
  local full=(judgeforge eval --config configs/eval/paper.yaml --judge "$BASE" --suite vicuna,mt_bench,hhh,autoj
    --data-dir "$DATA" --max_new_tokens "$EVAL_TOKENS" --retries 0 --out runs/e2e "${LIMIT[@]}")
  local n0; n0=$(cat "$W/n0" 2>/dev/null || echo 0)
  local half=$(( n0 + (SMOKE == 1 ? 6 : 2000) ))
  bg_until eval-paper-killed 400 "[[ \$(cat runs/e2e/generations*.jsonl 2>/dev/null | wc -l) -ge $half ]]" "${full[@]}"
  check eval-paper-killed "cache after the kill" "${TOOLS[@]}" cache runs/e2e --count-file "$W/n1"
  local n1; n1=$(cat "$W/n1" 2>/dev/null || echo 0)
  step eval-paper-rerun 400 "${full[@]}"
  check eval-paper-rerun "rc 0" rc_is $? 0
  check eval-paper-rerun "nothing generated twice" "${TOOLS[@]}" cache runs/e2e --before "$n1"
  check eval-paper-rerun "report complete: four files" "${TOOLS[@]}" report runs/e2e --benchmarks vicuna,mt_bench,hhh,autoj
  [[ -f runs/e2e/report.md ]] && cat runs/e2e/report.md >> "$PLOG"
}

run_part() {  # run_part NAME GROUP...: one log, one time budget
  CUR_PART=$1; shift
  PLOG=$OUT/log-$CUR_PART.txt
  : > "$PLOG"
  STARTED=$(now) DEADLINE=$(( $(now) + BUDGET ))
  echo "== $CUR_PART: $* ($(date -u +%FT%TZ)); budget ${BUDGET}s; work $W; disk: $(df -h "$W" | tail -1)" | tee -a "$PLOG"
  local g
  for g in "$@"; do "grp_$g"; done
  tail -c 8000000 "$PLOG" > "$PLOG.tmp" && mv "$PLOG.tmp" "$PLOG"
}

case $PART in
  all) run_part part1 train merge serve repro; run_part part2 eval ;;
  part1|part2) run_part "$PART" "${GROUPS_[@]}" ;;
  *) run_part "${PART//,/-}" "${GROUPS_[@]}" ;;
esac
[[ $DRY == 1 ]] && exit 0
"${TOOLS[@]}" summary "$OUT"
