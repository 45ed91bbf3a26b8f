#!/bin/bash
# An experiment as a SLURM job array, one shard per task; unchanged on CPU-only and GPU partitions.
#
#   # everything at once: the array, then a merge + report job chained with afterok
#   scripts/slurm_array.sh submit [sbatch options] -- EXPERIMENT.ini N [copaint run options]
#   scripts/slurm_array.sh submit --partition=gpu --gres=gpu:1 --cpus-per-task=8 --time=24:00:00 \
#       -- experiments/paper_celebahq.ini 8 --config site.ini
#
#   # or the array alone (merge yourself when it is done)
#   sbatch --array=0-7 [sbatch options] scripts/slurm_array.sh EXPERIMENT.ini 8 [run options]
#
# Task i runs `copaint run EXPERIMENT --shard i/N [run options]` into
# results/<name>/results.shard-i-of-N.* (or --out DIR). Resources come from the sbatch options
# (or SBATCH_* environment variables), none are hard-coded here: `--device auto` (the default)
# takes the GPU when the task has one, else the CPU; --threads is the task's CPUs
# (SLURM_CPUS_PER_TASK, else the CPUs the task may use). Progress goes to the log every
# COPAINT_PROGRESS seconds (default 60). Logs are appended (a requeued task keeps its history).
# A time limit or preemption sends SIGTERM (here 120 s before the limit): copaint stores the batch
# in progress and stops (exit 143); a requeued or rerun task resumes where it stopped. With
# COPAINT_REQUEUE=1 a task stopped by SIGTERM requeues itself (scontrol requeue).
# The merge job runs `copaint merge DIR && copaint report DIR > DIR/report.md` (log:
# slurm-<job>-merge.out beside the array's). Options: give sbatch options as `--opt=value`.
# The copaint binary: $COPAINT, else build/copaint of the submission folder, else copaint on PATH.
#SBATCH --job-name=copaint
#SBATCH --output=slurm-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
set -euo pipefail

usage() {
  sed -n '2,12p' "$0" >&2
  exit 2
}

copaint_binary() {
  if [ -n "${COPAINT:-}" ]; then
    echo "$COPAINT"
  elif [ -x build/copaint ]; then
    echo "build/copaint"
  elif command -v copaint >/dev/null 2>&1; then
    command -v copaint
  else
    echo "slurm_array.sh: no copaint binary (set COPAINT, or submit from the repository root)" >&2
    exit 2
  fi
}

# The results folder of `EXPERIMENT.ini [run options]`: --out DIR, else results/<name> with the
# name from --set name=..., the file's `name =` line, or its stem (as copaint run chooses it).
results_dir() {
  local experiment=$1 name="" out="" prev=""
  shift
  for a in "$@"; do
    case "$prev" in
      --out) out=$a ;;
      --set) case "$a" in name=*) name=${a#name=} ;; esac ;;
    esac
    case "$a" in
      --out=*) out=${a#--out=} ;;
      --set=name=*) name=${a#--set=name=} ;;
    esac
    prev=$a
  done
  if [ -n "$out" ]; then echo "$out"; return; fi
  if [ -z "$name" ]; then
    name=$(sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*\([^#[:space:]]*\).*/\1/p' \
      "$experiment" | head -n 1)
  fi
  if [ -z "$name" ]; then name=$(basename "${experiment%.*}"); fi
  echo "results/$name"
}

has_option() {  # has_option --threads "$@"
  local want=$1
  shift
  for a in "$@"; do
    case "$a" in "$want" | "$want"=*) return 0 ;; esac
  done
  return 1
}

mode=${1:-}
case "$mode" in
  submit)
    shift
    sbatch_opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do sbatch_opts+=("$1"); shift; done
    [ "${1:-}" = "--" ] || usage
    shift
    [ $# -ge 2 ] || usage
    experiment=$1
    shards=$2
    # The merge job needs no GPU.
    merge_opts=()
    merge_out=slurm-%j-merge.out
    for o in "${sbatch_opts[@]+"${sbatch_opts[@]}"}"; do
      case "$o" in
        --gres=* | --gpus=* | --gpus-per-*=* | -G*) ;;
        --output=*) merge_out="$(dirname "${o#--output=}")/slurm-%j-merge.out" ;;
        *) merge_opts+=("$o") ;;
      esac
    done
    array=$(sbatch --parsable --array=0-$((shards - 1)) "${sbatch_opts[@]+"${sbatch_opts[@]}"}" \
      "$0" "$@")
    array=${array%%;*}
    merge=$(sbatch --parsable --job-name=copaint-merge --dependency=afterok:"$array" \
      --output="$merge_out" --open-mode=append "${merge_opts[@]+"${merge_opts[@]}"}" \
      "$0" merge "$@")
    merge=${merge%%;*}
    echo "array job $array ($shards tasks), merge job $merge (after every task succeeded)"
    echo "results: $(results_dir "$@")"
    exit 0
    ;;
  merge)
    shift
    [ $# -ge 2 ] || usage
    copaint=$(copaint_binary)
    experiment=$1
    shift 2
    dir=$(results_dir "$experiment" "$@")
    echo "[$(date -u +%FT%TZ)] merge job ${SLURM_JOB_ID:-} on $(hostname): $dir"
    "$copaint" merge "$dir"
    "$copaint" report "$dir" > "$dir/report.md"
    echo "[$(date -u +%FT%TZ)] report: $dir/report.md"
    exit 0
    ;;
esac

if [ $# -lt 2 ] || [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then usage; fi
experiment=$1
shards=$2
shift 2
if [ "$SLURM_ARRAY_TASK_ID" -ge "$shards" ]; then
  echo "array task $SLURM_ARRAY_TASK_ID >= $shards shards: nothing to do" >&2
  exit 0
fi
copaint=$(copaint_binary)
args=(run "$experiment" --shard "$SLURM_ARRAY_TASK_ID/$shards" "$@")
if ! has_option --threads "$@"; then
  args+=(--threads "${SLURM_CPUS_PER_TASK:-$(nproc)}")
fi
if ! has_option --progress-every "$@"; then
  args+=(--progress-every "${COPAINT_PROGRESS:-60}")
fi
echo "[$(date -u +%FT%TZ)] task ${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID} (job ${SLURM_JOB_ID:-}," \
  "restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): $copaint ${args[*]}"

# copaint runs as a child so that SIGTERM reaches it through the trap (and the script can requeue).
"$copaint" "${args[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
set +e
wait "$child"
code=$?
if [ "$code" -gt 128 ] && kill -0 "$child" 2>/dev/null; then
  wait "$child"  # the trap interrupted the wait: wait for the clean stop
  code=$?
fi
set -e
echo "[$(date -u +%FT%TZ)] task ${SLURM_ARRAY_TASK_ID}: copaint exited with $code"
if [ "$code" -eq 143 ] && [ "${COPAINT_REQUEUE:-0}" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  echo "requeueing ${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID} to resume"
  scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID}" || true
fi
exit "$code"
