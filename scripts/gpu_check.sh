#!/usr/bin/env bash
# The GPU check, in one device call of at most 8 minutes: builds the core (libraries, copaint_verify,
# tests, benchmarks) against the machine's own Python torch with its CMake/ninja/nvcc, then
#   1. the CUDA device tests (fixture UNets per precision vs fp32, CPU = CUDA samples, peak memory),
#   2. copaint verify on CUDA (the recorded CoPaint cases, max errors, forwards),
#   3. the compute-bound ratio of a CoPaint sample at the paper's setting (ADM-256 architecture,
#      random weights, 250 steps, G=2) in fp32, tf32 and fp16,
#   4. the run options (channels-last, cuDNN benchmark, checkpointing, precisions; batch 1/4/8)
#      against the default,
# and writes gpu_check.md and gpu_check.json (plus the raw logs) under $OUT (or ./gpu_check_out).
# Needs .gpu_deps/ from scripts/gpu_bundle.sh (GoogleTest, Google Benchmark, nlohmann-json, zlib)
# carried with the working tree:
#   scripts/gpu_bundle.sh        # here, once
#   device run, carry [".gpu_deps"], command "bash scripts/gpu_check.sh", timeout 540
# Without a GPU it runs the same steps on the CPU with smaller cases (the build half and the CPU
# fallback of each measurement): scripts/gpu_check.sh --cpu.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
say() { echo "gpu_check [$(elapsed) s]: $*"; }
device=cuda
[[ "${1:-}" == "--cpu" ]] && device=cpu

# 1. The build. Torch: COPAINT_TORCH_PREFIX, else the python3 torch, else the setup.sh --cuda cache.
source scripts/torch_env.sh
prefix="${COPAINT_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)}"
[[ -n "$prefix" ]] || prefix=$(copaint_torch_prefix) || exit 1
deps="$PWD/.gpu_deps/usr"
[[ -d "$deps" ]] || { say "no .gpu_deps/ (run scripts/gpu_bundle.sh here and carry .gpu_deps)"; exit 1; }
torch_root=$(cd "$prefix/../.." && pwd)
build=build-gpu
targets=(copaint_verify copaint_framework_tests compute_bound_benchmark run_options_benchmark)
say "configuring against $torch_root ($(nproc) cores)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOPAINT_CORE_ONLY=ON \
  "-DCMAKE_PREFIX_PATH=$torch_root;$prefix;$deps" "-DZLIB_ROOT=$deps" \
  -DTORCH_CUDA_ARCH_LIST=9.0 >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; say "configure failed"; exit 1; }
ninja -C "$build" -j "$(nproc)" "${targets[@]}" >"$out/build.log" 2>&1 || { grep -A5 -m5 error "$out/build.log"; say "build failed"; exit 1; }
say "built ${targets[*]}"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:$torch_root/lib:${LD_LIBRARY_PATH:-}"
(command -v nvidia-smi >/dev/null && nvidia-smi -L) >"$out/gpus.txt" 2>&1 || true

# 2. Device tests and verify.
timeout 120 "$build/tests/copaint_framework_tests" --gtest_filter='Cuda*:TorchCompat*' \
  >"$out/device_tests.log" 2>&1
tests_rc=$?
say "device tests exit $tests_rc"
timeout 120 "$build/copaint_verify" --device "$device" --json "$out/verify.json" >"$out/verify.md" 2>"$out/verify.log"
verify_rc=$?
say "verify on $device exit $verify_rc"

# 3. Compute bound, 4. run options. Case names: benchmarks/compute_bound_benchmark.cpp and
# benchmarks/run_options_benchmark.cpp.
if [[ $device == cuda ]]; then
  bound_filter='BM_GemmThroughput/n:4096|BM_ConvThroughput/size:64|BM_CoPaintBound_CelebAHQ256/size:256/steps:250'
  options_filter='BM_UNetRunOption/Paper.*size:256'
  precisions=(fp32 tf32 fp16)
else
  bound_filter='BM_GemmThroughput/n:1024|BM_ConvThroughput/size:32|BM_CoPaintBound_Tiny/steps:25'
  options_filter='BM_UNetRunOption/Tiny.*batch:1$'
  precisions=(fp32 bf16)
fi
for p in "${precisions[@]}"; do
  COPAINT_BENCH_PRECISION=$p timeout 150 "$build/benchmarks/compute_bound_benchmark" \
    --benchmark_filter="$bound_filter" --benchmark_out="$out/bound_$p.json" --benchmark_out_format=json \
    >"$out/bound_$p.log" 2>&1
  say "compute bound $p exit $?"
done
timeout 150 "$build/benchmarks/run_options_benchmark" --benchmark_filter="$options_filter" \
  --benchmark_min_time=0.2 --benchmark_out="$out/run_options.json" --benchmark_out_format=json \
  >"$out/run_options.log" 2>&1
say "run options exit $?"

# 5. The summary.
python3 scripts/gpu_check_summary.py "$out" "$device" "$tests_rc" "$verify_rc" "$(elapsed)"
say "summary in $out/gpu_check.md and $out/gpu_check.json"
[[ $tests_rc -eq 0 && $verify_rc -eq 0 ]]
