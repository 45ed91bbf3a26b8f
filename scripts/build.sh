#!/usr/bin/env bash
# Configures and builds copaint-bench (Release, Ninja, ccache when present).
# Usage: scripts/build.sh [--cuda] [--dir DIR] [cmake configure arguments, e.g. -DCOPAINT_CORE_ONLY=ON]
#   default  build/       against Debian's libtorch-dev (CPU)
#   --cuda   build-cuda/  against the CUDA LibTorch that scripts/setup.sh --cuda installed (or
#            COPAINT_TORCH_PREFIX); it builds and runs on a machine without a GPU too
#   --dir    another build folder (scripts/test.sh --core: build-core/, build-cuda-core/)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_env.sh
dir=build
args=()
cuda=0
[[ "${1:-}" == "--cuda" ]] && { cuda=1; dir=build-cuda; shift; }
[[ "${1:-}" == "--dir" ]] && { dir="${2:?build: --dir needs a folder}"; shift 2; }
if ((cuda)); then
  prefix=$(copaint_torch_prefix)
  # The torch folder itself goes first, so that its lib/ wins over a system libtorch (Debian's).
  args+=("-DCMAKE_PREFIX_PATH=$(cd "$prefix/../.." && pwd);$prefix")
  # LibTorch's CMake config looks for the CUDA toolkit it was built with (nvcc, cudart headers).
  if ! command -v nvcc >/dev/null; then
    for root in "${CUDA_HOME:-}" /usr/local/cuda; do
      [[ -n "$root" && -x "$root/bin/nvcc" ]] && args+=("-DCUDAToolkit_ROOT=$root" "-DCMAKE_CUDA_COMPILER=$root/bin/nvcc") && break
    done
  fi
fi
jobs="${COPAINT_JOBS:-$(nproc)}"
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@" >"$dir/configure.log" 2>&1 || {
  cat "$dir/configure.log" >&2
  echo "build: cmake configure of $dir/ failed (log above, also in $dir/configure.log)" >&2
  exit 1
}
cmake --build "$dir" -j "$jobs"
