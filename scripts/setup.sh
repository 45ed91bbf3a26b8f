#!/usr/bin/env bash
# Installs what copaint-bench needs (only what is missing). Safe to re-run.
# Usage: scripts/setup.sh [--core] [--cuda]
#   --core  only what the LibTorch-only core and its tests need
#   --cuda  also PyPI's CUDA torch (LibTorch 2.x inside) into a cache folder outside the repository,
#           for scripts/build.sh --cuda: $COPAINT_CACHE/torch-<version> (COPAINT_CACHE defaults to
#           ~/.cache/copaint; the pip download cache lives there too and is reused)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_env.sh

core=0
cuda=0
for arg in "$@"; do
  case "$arg" in
    --core) core=1 ;;
    --cuda) cuda=1 ;;
    *) echo "setup: unknown argument '$arg' (valid: --core, --cuda)" >&2; exit 2 ;;
  esac
done

debian_core=(build-essential cmake ninja-build ccache git pkg-config clang-format libgtest-dev libbenchmark-dev
             nlohmann-json3-dev zlib1g-dev)
debian_io=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
           libboost-program-options-dev libhdf5-dev libsqlite3-dev dataset-fashion-mnist
           gnuplot-nox texlive-latex-recommended python3 python3-numpy python3-pandas python3-h5py)
pkgs=("${debian_core[@]}" libtorch-dev)
((core)) || pkgs+=("${debian_io[@]}")
((cuda)) && pkgs+=(python3 python3-pip)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 that is not Debian's (pyenv, conda) serves as well as Debian's python3-pip.
if ((cuda)) && command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  kept=()
  for p in "${missing[@]}"; do [[ "$p" == python3 || "$p" == python3-pip ]] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#pkgs[@]} Debian packages present"
else
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
((cuda)) || exit 0

# PyPI's torch wheel for Linux x86_64 is a CUDA build; its package carries LibTorch's headers,
# CMake config and shared libraries, and pulls the CUDA runtime libraries it links (nvidia-*).
# Installed into a fresh folder first and renamed when complete, so an interrupted install is
# redone instead of half-used.
if [[ -f "$COPAINT_TORCH_DIR/.complete" ]]; then
  echo "setup: torch $COPAINT_TORCH_PIN present in $COPAINT_TORCH_DIR"
  exit 0
fi
mkdir -p "$COPAINT_CACHE/pip"
partial="$COPAINT_TORCH_DIR.partial"
rm -rf "$partial"
echo "setup: installing torch $COPAINT_TORCH_PIN (CUDA wheel, ~3 GB download, pip cache $COPAINT_CACHE/pip)"
start=$(date +%s)
if ! PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
    --no-compile --cache-dir "$COPAINT_CACHE/pip" --target "$partial" "torch==$COPAINT_TORCH_PIN"; then
  rm -rf "$partial"
  echo "setup: ERROR: could not install torch==$COPAINT_TORCH_PIN from PyPI (network or disk?);" \
       "the CUDA build needs it. Fix the cause and rerun scripts/setup.sh --cuda" >&2
  exit 1
fi
rm -rf "$COPAINT_TORCH_DIR"
mv "$partial" "$COPAINT_TORCH_DIR"
python3 - "$COPAINT_TORCH_DIR" >"$COPAINT_TORCH_DIR/.complete" <<'EOF'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
text = (root / "torch" / "version.py").read_text()
print(re.search(r"__version__ = '([^']+)'", text).group(1))
EOF
echo "setup: torch $(cat "$COPAINT_TORCH_DIR/.complete") installed in $(( $(date +%s) - start )) s"
