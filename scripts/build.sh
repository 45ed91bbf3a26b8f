#!/usr/bin/env bash
# Configures and builds copaint-bench into build/ (Release, Ninja, ccache when present).
# Extra arguments go to cmake's configure step, e.g. -DCOPAINT_CORE_ONLY=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${COPAINT_JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
