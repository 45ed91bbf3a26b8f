#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the test suite.
# Tests whose name contains "Slow" are left out unless --all is given.
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
[[ "${1:-}" == "--all" ]] && all=1
scripts/setup.sh
start=$(date +%s)
scripts/build.sh
echo "test: build took $(( $(date +%s) - start )) s"
start=$(date +%s)
if ((all)); then
  ctest --test-dir build --output-on-failure -j "$(nproc)"
else
  ctest --test-dir build --output-on-failure -j "$(nproc)" -E Slow
fi
echo "test: tests took $(( $(date +%s) - start )) s"
