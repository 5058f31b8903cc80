#!/usr/bin/env bash
# Launch `judgeforge train` on the CPU, one GPU, all GPUs of this machine, or several machines.
#
#   scripts/train.sh RECIPE.yaml [--key value ...]          # every GPU here (1 process per GPU), or the CPU
#   GPUS=4 scripts/train.sh RECIPE.yaml                      # 4 GPUs of this machine
#   LAUNCHER=deepspeed scripts/train.sh RECIPE.yaml          # the DeepSpeed launcher instead of torchrun
#   HOSTFILE=scripts/launch/hostfile scripts/train.sh RECIPE.yaml
#                                                            # several machines via the DeepSpeed launcher
#                                                            # (pdsh/ssh; see scripts/launch/README.md)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 scripts/train.sh RECIPE.yaml
#                                                            # several machines via torchrun: run this on
#                                                            # every machine with its own NODE_RANK
#
# Environment: GPUS (processes per machine; default: all GPUs), LAUNCHER (torchrun | deepspeed | python),
# HOSTFILE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (default 29500), PYTHON (default python3).
# The global batch stays the recipe's at any GPU count: the 7B recipes set global_batch_size: 64 and
# derive the gradient accumulation from the number of processes.
set -euo pipefail
if [[ $# -lt 1 ]]; then
  sed -n '2,21p' "$0"
  exit 2
fi
PYTHON=${PYTHON:-python3}
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}

if [[ -z "${GPUS:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  else
    GPUS=0
  fi
fi

if [[ -n "${HOSTFILE:-}" ]]; then
  LAUNCHER=deepspeed
fi
if [[ -z "${LAUNCHER:-}" ]]; then
  if [[ "$NNODES" -gt 1 || "$GPUS" -gt 1 ]]; then LAUNCHER=torchrun; else LAUNCHER=python; fi
fi

set -x
case "$LAUNCHER" in
  python)
    # one process (CPU or one GPU); DeepSpeed, when the recipe names a config, runs as a group of one
    exec "$PYTHON" -m judgeforge.train.cli "$@"
    ;;
  torchrun)
    exec "$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --node_rank "$NODE_RANK" \
      --nproc_per_node "$(( GPUS > 0 ? GPUS : 1 ))" \
      --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "$MASTER_PORT" \
      -m judgeforge.train.cli "$@"
    ;;
  deepspeed)
    args=(--master_port "$MASTER_PORT")
    if [[ -n "${HOSTFILE:-}" ]]; then
      args+=(--hostfile "$HOSTFILE")
      [[ -n "${MASTER_ADDR:-}" ]] && args+=(--master_addr "$MASTER_ADDR")
      [[ -n "${GPUS:-}" && "$GPUS" -gt 0 ]] && args+=(--num_gpus "$GPUS")
    else
      args+=(--num_gpus "$(( GPUS > 0 ? GPUS : 1 ))")
    fi
    # --module: run judgeforge.train.cli like `python -m`; it drops the --local_rank=N the launcher adds
    exec deepspeed "${args[@]}" --module judgeforge.train.cli "$@"
    ;;
  *)
    echo "scripts/train.sh: LAUNCHER must be torchrun, deepspeed or python (got '$LAUNCHER')" >&2
    exit 2
    ;;
esac
