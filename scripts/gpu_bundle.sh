#!/usr/bin/env bash
# Gathers, from this machine's Debian packages, what scripts/gpu_check.sh needs on a GPU machine
# that has only CMake, ninja, nvcc and a Python torch: GoogleTest/GoogleMock (static), Google
# Benchmark, nlohmann-json and zlib, with their CMake configs, in .gpu_deps/usr (git-ignored,
# ~4 MB). Carry it with the working tree: device run --carry .gpu_deps.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --core >/dev/null
lib=/usr/lib/x86_64-linux-gnu
out=.gpu_deps/usr
rm -rf .gpu_deps
mkdir -p "$out/include" "$out/lib/x86_64-linux-gnu/cmake" "$out/share/cmake"
cp -a /usr/include/gtest /usr/include/gmock /usr/include/benchmark /usr/include/nlohmann \
      /usr/include/zlib.h /usr/include/zconf.h "$out/include/"
cp -a "$lib"/libgtest*.a "$lib"/libgmock*.a "$lib"/libbenchmark* "$lib"/libz.a "$out/lib/x86_64-linux-gnu/"
cp -a "$lib/cmake/GTest" "$lib/cmake/benchmark" "$out/lib/x86_64-linux-gnu/cmake/"
cp -a /usr/share/cmake/nlohmann_json "$out/share/cmake/"
# nlohmann's config points at /usr/include by absolute path: make it relative to the bundle.
sed -i 's|"/usr/include"|"${CMAKE_CURRENT_LIST_DIR}/../../../include"|g' "$out/share/cmake/nlohmann_json/"*.cmake
echo "gpu_bundle: $(du -sh .gpu_deps | cut -f1) in .gpu_deps/ (carry it: .gpu_deps)"
