#!/bin/bash
# Runs one shard of an experiment per SLURM array task:
#   sbatch --array=0-7 scripts/slurm_array.sh experiments/paper_celebahq.ini 8 [--set k=v ...]
# Task i runs `copaint run EXPERIMENT --shard i/N` into results/<name>/results.shard-i-of-N.*;
# a requeued or rerun task resumes where it stopped. When every task is done:
#   copaint merge results/<name> && copaint report results/<name>
# Adjust the resources below to the cluster (one GPU per task).
#SBATCH --job-name=copaint
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%A_%a.out
#SBATCH --requeue
set -euo pipefail

if [ $# -lt 2 ] || [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "usage: sbatch --array=0-(N-1) $0 EXPERIMENT.ini N [copaint run options]" >&2
  exit 2
fi
experiment=$1
shards=$2
shift 2
if [ "$SLURM_ARRAY_TASK_ID" -ge "$shards" ]; then
  echo "array task $SLURM_ARRAY_TASK_ID >= $shards shards: nothing to do" >&2
  exit 0
fi
copaint=${COPAINT:-build/copaint}
exec "$copaint" --device cuda run "$experiment" --shard "$SLURM_ARRAY_TASK_ID/$shards" "$@"
