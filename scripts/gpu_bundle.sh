#!/usr/bin/env bash
# Gathers, from this machine's Debian packages, what scripts/gpu_check.sh needs on a GPU machine
# that has only CMake, ninja, nvcc and a Python torch: GoogleTest/GoogleMock (static), Google
# Benchmark, nlohmann-json and zlib, with their CMake configs, in .gpu_deps/usr (git-ignored,
# ~4 MB). Carry it with the working tree: device run --carry .gpu_deps.
# --reference REF also copies the reference implementation's code (UCSB-NLP-Chang/CoPaint at commit
# 0b728b02: guided_diffusion/, utils/, configs/; ~0.3 MB) into .gpu_deps/reference for the race of
# scripts/gpu_check.sh. REF: a checkout or a git mirror of it; the copy is never committed.
#   scripts/gpu_bundle.sh [--reference REF]
set -euo pipefail
cd "$(dirname "$0")/.."
ref=""
if [[ "${1:-}" == "--reference" ]]; then
  ref="${2:?gpu_bundle: --reference needs a CoPaint checkout or git mirror}"
fi
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
if [[ -n "$ref" ]]; then
  mkdir -p .gpu_deps/reference
  commit=0b728b02
  if git --git-dir="$ref" rev-parse -q --verify "$commit^{commit}" >/dev/null 2>&1; then
    git --git-dir="$ref" archive "$commit" guided_diffusion utils configs | tar -x -C .gpu_deps/reference
  elif git -C "$ref" rev-parse -q --verify "$commit^{commit}" >/dev/null 2>&1; then
    git -C "$ref" archive "$commit" guided_diffusion utils configs | tar -x -C .gpu_deps/reference
  elif [[ -d "$ref/guided_diffusion" ]]; then
    echo "gpu_bundle: $ref is not a git checkout; copying its files as they are (commit unknown)" >&2
    cp -a "$ref/guided_diffusion" "$ref/utils" "$ref/configs" .gpu_deps/reference/
  else
    echo "gpu_bundle: $ref holds neither commit $commit nor guided_diffusion/" >&2
    exit 1
  fi
  echo "gpu_bundle: the reference's code in .gpu_deps/reference ($(du -sh .gpu_deps/reference | cut -f1))"
fi
echo "gpu_bundle: $(du -sh .gpu_deps | cut -f1) in .gpu_deps/ (carry it: .gpu_deps)"
