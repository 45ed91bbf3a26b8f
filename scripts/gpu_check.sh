#!/usr/bin/env bash
# The GPU check, in one device call: builds the core against the machine's own Python torch (its
# CMake/ninja/nvcc), then, ordered by value,
#   1. device tests: every CUDA test (names with Cuda or Device, TorchCompat) of the framework
#      and methods suites,
#   2. verify: copaint_verify on every shipped recording (CoPaint and baselines), max errors,
#   3. race: the reference (UCSB-NLP-Chang/CoPaint) and ours side by side on the same case, same
#      precision: a CoPaint sample and a DDNM sample (ADM-256 architecture, random weights),
#   4. precision: a CoPaint sample per precision (fp32, tf32, bf16, fp16) against the compute bound,
#   5. memory: peak memory and time of the paper's UNet forward+backward at batch 1, 4 and 8.
# Each step appends its result to gpu_check.md / gpu_check.json under $OUT (or ./gpu_check_out) as
# soon as it ends, so a step that times out or crashes leaves every earlier result and is named
# as the one that did not finish. The step limits below add up to 530 s with the build (GPU).
# Needs, carried with the working tree: .gpu_deps/ from scripts/gpu_bundle.sh (GoogleTest, Google
# Benchmark, nlohmann-json, zlib and, with --reference, a copy of the reference's code):
#   scripts/gpu_bundle.sh --reference REF   # here, once (REF: a CoPaint checkout or git mirror)
#   device run, carry [".gpu_deps"], command "bash scripts/gpu_check.sh", timeout_s 600
# Rehearsal without a GPU: scripts/gpu_check.sh --cpu runs every step on the CPU with small cases
# (the tiny fixture UNet; the build gets a longer limit: 2 cores, not 16). Here:
#   COPAINT_TORCH_PREFIX=/usr/lib/x86_64-linux-gnu/cmake COPAINT_PYTHON=/usr/bin/python3 \
#     scripts/gpu_check.sh --cpu
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
rm -f "$out"/steps.jsonl "$out"/gpu_check.md "$out"/gpu_check.json
exec > >(tee "$out/gpu_check.log") 2>&1
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
say() { echo "gpu_check [$(elapsed) s]: $*"; }
device=cuda
[[ "${1:-}" == "--cpu" ]] && device=cpu
summary() { python3 scripts/gpu_check_summary.py "$out" "$device" "$(elapsed)"; }

# step NAME LIMIT_S COMMAND...: runs one step under its limit, records its exit and duration in
# steps.jsonl (a "started" line first, so a check killed from outside names the unfinished step),
# and rewrites the summary.
step() {
  local name=$1 limit=$2
  shift 2
  echo "{\"step\": \"$name\", \"started\": $(elapsed), \"limit\": $limit}" >>"$out/steps.jsonl"
  summary
  local t0=$(date +%s)
  # The step's functions and settings reach the child shell through export -f / export.
  timeout --kill-after=1 "$limit" bash -c '"$@"' step "$@" >"$out/$name.log" 2>&1
  local rc=$? status=ok
  ((rc == 124 || rc == 137)) && status="timed out"
  ((rc != 0 && rc != 124 && rc != 137)) && status="failed"
  echo "{\"step\": \"$name\", \"exit\": $rc, \"status\": \"$status\", \"seconds\": $(($(date +%s) - t0)), \"limit\": $limit}" >>"$out/steps.jsonl"
  summary
  say "$name: $status (exit $rc) in $(($(date +%s) - t0)) s"
  return 0
}

# Limits (seconds). GPU: 16 cores build only the five targets below.
if [[ $device == cuda ]]; then
  limit_build=200 limit_tests=45 limit_verify=60 limit_race=95 limit_precision=85 limit_memory=45
  race_config=scripts/race_configs/celebahq256.json race_steps=20
  precisions="fp32 tf32 bf16 fp16" bound_filter='BM_CoPaintBound_CelebAHQ256/size:256/steps:10/'
  memory_filter='BM_UNetRunOption/PaperForwardBackward/fp32/size:256/batch:(1|4|8)/'
  verify_args=""  # every step of every recording, end to end too
else
  limit_build=1800 limit_tests=45 limit_verify=60 limit_race=95 limit_precision=85 limit_memory=45
  race_config=tests/fixtures/unet/adm_tiny_config.json race_steps=10
  precisions="fp32 bf16" bound_filter='BM_CoPaintBound_Tiny/steps:25/'
  memory_filter='BM_UNetRunOption/TinyForwardBackward/fp32/size:32/batch:(1|4)/'
  verify_args="--steps-only --stride 8"  # 2 slow cores: every 8th step of every recording
fi
export COPAINT_CHECK_LIMITS="build=$limit_build tests=$limit_tests verify=$limit_verify race=$limit_race precision=$limit_precision memory=$limit_memory"

# 0. The build. Torch: COPAINT_TORCH_PREFIX, else the python3 torch, else the setup.sh --cuda cache.
source scripts/torch_env.sh
prefix="${COPAINT_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)}"
[[ -n "$prefix" ]] || prefix=$(copaint_torch_prefix) || exit 1
deps="$PWD/.gpu_deps/usr"
[[ -d "$deps" ]] || { say "no .gpu_deps/ (run scripts/gpu_bundle.sh here and carry .gpu_deps)"; exit 1; }
torch_root=$(cd "$prefix/../.." && pwd)
build=build-gpu
[[ $device == cpu ]] && build=build-gpu-rehearsal
targets="copaint_verify copaint_framework_tests copaint_methods_tests compute_bound_benchmark
         run_options_benchmark race_benchmark"
(command -v nvidia-smi >/dev/null && nvidia-smi -L) >"$out/gpus.txt" 2>&1 || true
build_core() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOPAINT_CORE_ONLY=ON \
    "-DCMAKE_PREFIX_PATH=$torch_root;$prefix;$deps" "-DZLIB_ROOT=$deps" -DTORCH_CUDA_ARCH_LIST=9.0 &&
    ninja -C "$build" -j "$(nproc)" $targets
}
export build deps torch_root prefix out device race_config race_steps bound_filter targets precisions

# benchmark_ran JSON: Google Benchmark exits 0 when its filter matches nothing; a step that ran no
# case, or a case that reported an error, fails.
benchmark_ran() {
  python3 - "$1" <<'PY'
import json, sys
try:
    runs = json.load(open(sys.argv[1])).get("benchmarks", [])
except (OSError, ValueError):
    runs = []
bad = [b["name"] for b in runs if b.get("error_occurred")]
print(f"{sys.argv[1]}: {len(runs)} case(s), {len(bad)} with an error {bad}")
sys.exit(0 if runs and not bad else 1)
PY
}
export -f benchmark_ran
export -f build_core
say "building $(echo $targets) against $torch_root ($(nproc) cores)"
step build "$limit_build" build_core
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:$torch_root/lib:${LD_LIBRARY_PATH:-}"

# 1. Device tests.
device_tests() {
  local rc=0
  for t in framework methods; do
    "$build/tests/copaint_${t}_tests" --gtest_filter='*Cuda*:*Device*:TorchCompat*' || rc=1
  done
  return $rc
}
export -f device_tests
step tests "$limit_tests" device_tests

# 2. verify on every shipped recording.
step verify "$limit_verify" "$build/copaint_verify" --device "$device" $verify_args --json "$out/verify.json"

# 3. The race against the reference (gpu_bundle.sh --reference put its code in .gpu_deps), under
# the Python that has torch (COPAINT_PYTHON; the rehearsal here: Debian's /usr/bin/python3 with
# python3-torch).
python="${COPAINT_PYTHON:-python3}"
export python
race() {
  local ref=.gpu_deps/reference precision=fp32
  [[ -d $ref/guided_diffusion ]] || { echo "no $ref (scripts/gpu_bundle.sh --reference REF)"; return 1; }
  for method in copaint ddnm; do
    COPAINT_RACE_CONFIG=$race_config COPAINT_RACE_STEPS=$race_steps COPAINT_BENCH_PRECISION=$precision \
      "$build/benchmarks/race_benchmark" --benchmark_filter="BM_Race/$method/" \
      --benchmark_out="$out/race_ours_$method.json" --benchmark_out_format=json &&
      benchmark_ran "$out/race_ours_$method.json" || return 1
    "$python" scripts/race_reference.py "$ref" "$race_config" "$method" "$race_steps" "$device" \
      "$precision" "$(nproc)" | tee "$out/race_reference_$method.json" || return 1
  done
}
export -f race
step race "$limit_race" race

# 4. A CoPaint sample per precision against the compute bound.
precision_bound() {
  local rc=0
  for p in $precisions; do
    COPAINT_BENCH_PRECISION=$p "$build/benchmarks/compute_bound_benchmark" \
      --benchmark_filter="$bound_filter" --benchmark_out="$out/bound_$p.json" \
      --benchmark_out_format=json && benchmark_ran "$out/bound_$p.json" || rc=1
  done
  return $rc
}
export -f precision_bound
step precision "$limit_precision" precision_bound

# 5. Peak memory (and time) at batch 1, 4 and 8.
memory() {
  "$build/benchmarks/run_options_benchmark" --benchmark_filter="$memory_filter" \
    --benchmark_min_time=0.1 --benchmark_out="$out/run_options.json" --benchmark_out_format=json &&
    benchmark_ran "$out/run_options.json"
}
export memory_filter
export -f memory
step memory "$limit_memory" memory

say "done; summary in $out/gpu_check.md and $out/gpu_check.json"
python3 - "$out/steps.jsonl" <<'EOF'
import json, sys
ends = [json.loads(l) for l in open(sys.argv[1]) if '"exit"' in l]
sys.exit(0 if all(e["exit"] == 0 for e in ends) else 1)
EOF
