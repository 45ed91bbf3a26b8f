#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the test suite.
# Usage: scripts/test.sh [--cuda] [--core] [--all]
#   --cuda  the CUDA build (build-cuda/, LibTorch 2.x from PyPI's torch; runs on the CPU when the
#           machine has no GPU)
#   --core  only the LibTorch-only core (-DCOPAINT_CORE_ONLY=ON, no benchmarks) and its tests:
#           framework, datasets, metrics, methods, verify; build-core/ (build-cuda-core/ with --cuda).
#           CI tests the CUDA build this way: what depends on the LibTorch version is in the core
#   --all   also the slow tests (names containing "Slow"); without it they are left out
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
cuda=0
core=0
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    --cuda) cuda=1 ;;
    --core) core=1 ;;
    *) echo "test: unknown argument '$arg' (valid: --cuda, --core, --all)" >&2; exit 2 ;;
  esac
done
dir=build
setup_args=()
build_args=()
if ((cuda)); then
  dir=build-cuda
  setup_args=(--cuda)
  build_args=(--cuda)
fi
if ((core)); then
  dir="$dir-core"
  setup_args+=(--core)
  build_args+=(--dir "$dir" -DCOPAINT_CORE_ONLY=ON -DCOPAINT_BUILD_BENCHMARKS=OFF)
fi
start=$(date +%s)
scripts/setup.sh "${setup_args[@]}"
echo "test: setup took $(( $(date +%s) - start )) s"
start=$(date +%s)
scripts/build.sh "${build_args[@]}"
echo "test: build of $dir/ took $(( $(date +%s) - start )) s"
scripts/check_format.sh
scripts/check_tree_size.sh
start=$(date +%s)
filter=(-E Slow)
((all)) && filter=()
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "${filter[@]}"
echo "test: tests in $dir/ took $(( $(date +%s) - start )) s"
