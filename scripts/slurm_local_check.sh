#!/bin/bash
# Checks scripts/slurm_array.sh on a real single-node SLURM on this machine (localhost only):
# starts munge and a private slurmctld + slurmd (config, state and logs in one temporary folder,
# ports 16817/16818, nothing written to /etc/slurm), submits a 3-task array on the bundled model
# with the chained merge job, runs the same grid unsharded outside SLURM, and compares the scores
# and the stored samples bit for bit. Needs root and Debian's slurm-wlm and munge
# (`apt-get install slurm-wlm munge`; --install does it). Stops the daemons it started.
#
#   sudo scripts/slurm_local_check.sh [--install] [--keep]     # from the repository root
#
# --time-limit also checks a real time limit: one task with `--time=1` and COPAINT_REQUEUE=1 is
# signalled (SIGTERM) before its limit, stores its batch, stops, requeues itself, and resumes
# until the grid is done; its results must equal an uninterrupted run's.
#
# Exit code 0 when the sharded and unsharded results are identical.
set -euo pipefail
install=0
keep=0
time_limit=0
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    --keep) keep=1 ;;
    --time-limit) time_limit=1 ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "slurm_local_check.sh: needs root (it starts slurmd)" >&2; exit 2; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$install" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge
  else
    echo "slurm_local_check.sh: install slurm-wlm and munge first (or pass --install)" >&2
    exit 2
  fi
fi
copaint=${COPAINT:-build/copaint}
[ -x "$copaint" ] || { echo "no $copaint: build it first (or set COPAINT)" >&2; exit 2; }
copaint=$(realpath "$copaint")
repo=$(pwd)

work=$(mktemp -d /tmp/copaint_slurm.XXXXXX)
chmod 755 "$work"
export SLURM_CONF=$work/slurm.conf
pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$work/slurmctld.pid" ]; then kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true; fi
  if [ -f "$work/slurmd.pid" ]; then kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true; fi
  if [ -f "$work/munged.pid" ]; then kill "$(cat "$work/munged.pid")" 2>/dev/null || true; fi
  for f in slurmctld slurmd munged; do  # let them exit before their folder goes
    for _ in $(seq 20); do
      [ -f "$work/$f.pid" ] && kill -0 "$(cat "$work/$f.pid")" 2>/dev/null || break
      sleep 0.5
    done
  done
  if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

# --- munge (its own socket and pid file in $work)
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create 2>/dev/null || create-munge-key -f
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
mkdir -p "$work/munge"
chown munge:munge "$work/munge"
runuser -u munge -- munged --socket="$work/munge/munge.socket" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" --force
sleep 1
cp "$work/munge/munged.pid" "$work/munged.pid"

# --- slurm.conf for this host only
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$work/state" "$work/spool"
cat > "$SLURM_CONF" <<CONF
ClusterName=copaintcheck
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
: > "$work/cgroup.conf"
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -q idle; then break; fi
  sleep 1
done
echo "== sinfo"
sinfo

# --- the grid: 2 methods x 1 mask x 3 images on the bundled model, layered config
cat > "$work/slurm_check.ini" <<'INI'
name = slurm_check
model = adm
dataset = fashion_mnist
methods = copaint, blended
masks = half
metrics = psnr, ssim
batch_size = 2

[fashion_mnist]
count = 3

[copaint]
respacing = 10
G = 1

[blended]
respacing = 10
INI
run_opts=(--config experiments/bundled/model.ini --out "$work/results/sharded")

echo "== submit: scripts/slurm_array.sh submit --cpus-per-task=1 -- ... 3"
export COPAINT=$copaint COPAINT_PROGRESS=2
submit_out=$(scripts/slurm_array.sh submit --cpus-per-task=1 --chdir="$repo" \
  --output="$work/slurm-%A_%a.out" -- "$work/slurm_check.ini" 3 "${run_opts[@]}")
echo "$submit_out"
array=$(echo "$submit_out" | sed -n 's/^array job \([0-9]*\).*/\1/p')
merge=$(echo "$submit_out" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
for _ in $(seq 900); do
  left=$(squeue -h -o '%i %T %r' 2>/dev/null || true)
  if [ -z "$left" ]; then break; fi
  if echo "$left" | grep -q DependencyNeverSatisfied; then
    echo "a task failed: the merge job will never run"; scancel "$merge"; break
  fi
  sleep 1
done
echo "== job states (scontrol)"
for j in "$array" "$merge"; do
  scontrol -o show job "$j" 2>/dev/null | tr ' ' '\n' | grep -E '^(JobId|ArrayTaskId|JobState|ExitCode)=' \
    | paste -sd' ' || true
done
echo "== task logs"
for f in "$work"/slurm-*.out; do
  [ -f "$f" ] || continue
  echo "--- $(basename "$f")"
  grep -E 'task |progress:|slurm_check:|copaint exited|merge|merged|report' "$f" || true
done

echo "== unsharded run (outside SLURM)"
# With the tasks' thread count (1 CPU each): LibTorch's reductions may depend on it.
"$copaint" run "$work/slurm_check.ini" --config experiments/bundled/model.ini \
  --out "$work/results/full" --device auto --threads 1 -q

echo "== compare sharded+merged with unsharded"
dump() {
  sqlite3 "$1" "SELECT c.cell_key, p.image_index, p.sample_index, s.metric, printf('%.17g', s.value)
    FROM score s JOIN sample p ON p.id = s.sample_id JOIN cell c ON c.id = p.cell_id
    ORDER BY 1, 2, 3, 4"
}
dump "$work/results/sharded/results.sqlite" > "$work/sharded.txt"
dump "$work/results/full/results.sqlite" > "$work/full.txt"
echo "scores: $(wc -l < "$work/sharded.txt") sharded, $(wc -l < "$work/full.txt") unsharded"
status=0
if cmp -s "$work/sharded.txt" "$work/full.txt" && [ -s "$work/full.txt" ]; then
  echo "scores: bit-identical"
else
  echo "scores: DIFFER"; diff "$work/sharded.txt" "$work/full.txt" | head || true; status=1
fi
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import h5py, numpy' 2>/dev/null; then
    "$py" - "$work/results/sharded" "$work/results/full" <<'PY' || status=1
import sqlite3, sys, h5py, numpy as np
a, b = sys.argv[1:3]
def samples(d):
    con = sqlite3.connect(d + "/results.sqlite")
    paths = [r[0] for r in con.execute("SELECT sample_path FROM sample WHERE status='ok'")]
    with h5py.File(d + "/results.h5", "r") as f:
        return {p: f[p][()] for p in paths}
sa, sb = samples(a), samples(b)
same = sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
print("samples: %d sharded, %d unsharded, %s" % (len(sa), len(sb), "bit-identical" if same else "DIFFER"))
sys.exit(0 if same else 1)
PY
    break
  fi
done
echo "== environment recorded per run"
sqlite3 -header "$work/results/sharded/results.sqlite" \
  "SELECT id, shard, device_type, threads, host, slurm_array_job_id, slurm_array_task_id, status FROM experiment"
echo "== report (merge job)"
head -n 12 "$work/results/sharded/report.md" 2>/dev/null || echo "no report.md"

if [ "$time_limit" = 1 ]; then
  echo "== time limit: one task, --time=1, SIGTERM 50 s before, COPAINT_REQUEUE=1"
  sed -e 's/^name = slurm_check/name = slurm_requeue/' -e 's/^count = 3/count = 12/' \
    -e 's/^respacing = 10$/respacing = 50/' -e 's/^batch_size = 2/batch_size = 1/' \
    "$work/slurm_check.ini" > "$work/slurm_requeue.ini"
  tl_opts=(--config experiments/bundled/model.ini --out "$work/results/requeue")
  submit_out=$(COPAINT_REQUEUE=1 scripts/slurm_array.sh submit --cpus-per-task=1 --time=1 \
    --signal=B:TERM@50 --export=ALL --chdir="$repo" --output="$work/requeue-%A_%a.out" \
    -- "$work/slurm_requeue.ini" 1 "${tl_opts[@]}")
  echo "$submit_out"
  for _ in $(seq 1200); do
    [ -z "$(squeue -h 2>/dev/null || true)" ] && break
    sleep 1
  done
  for f in "$work"/requeue-*.out; do
    [ -f "$f" ] || continue
    echo "--- $(basename "$f")"
    grep -E 'task |stopp|resum|requeue|slurm_requeue:|copaint exited|merged' "$f" || true
  done
  "$copaint" run "$work/slurm_requeue.ini" "${tl_opts[@]:0:2}" --out "$work/results/requeue_full" \
    --device auto --threads 1 -q
  dump "$work/results/requeue/results.sqlite" > "$work/requeue.txt"
  dump "$work/results/requeue_full/results.sqlite" > "$work/requeue_full.txt"
  restarts=$(grep -c 'requeueing' "$work"/requeue-*.out 2>/dev/null || true)
  echo "requeued $restarts time(s); scores: $(wc -l < "$work/requeue.txt") after the requeues," \
    "$(wc -l < "$work/requeue_full.txt") uninterrupted"
  if cmp -s "$work/requeue.txt" "$work/requeue_full.txt" && [ -s "$work/requeue_full.txt" ] &&
    [ "${restarts:-0}" -ge 1 ]; then
    echo "time limit: requeued and resumed, scores bit-identical"
  else
    echo "time limit: FAILED"; status=1
  fi
fi
[ "$status" = 0 ] && echo "SLURM check: OK" || echo "SLURM check: FAILED"
exit "$status"
