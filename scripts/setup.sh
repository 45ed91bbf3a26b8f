#!/usr/bin/env bash
# Installs the Debian 12 packages copaint-bench needs (only those missing). Safe to re-run.
# Usage: scripts/setup.sh [--core]   (--core: only what the LibTorch-only core and tests need)
set -euo pipefail

core=(build-essential cmake ninja-build ccache git pkg-config libtorch-dev libgtest-dev
      libbenchmark-dev nlohmann-json3-dev zlib1g-dev)
io=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libboost-program-options-dev
    libhdf5-dev libsqlite3-dev dataset-fashion-mnist)
pkgs=("${core[@]}")
[[ "${1:-}" == "--core" ]] || pkgs+=("${io[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
