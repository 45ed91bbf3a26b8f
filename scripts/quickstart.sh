#!/usr/bin/env bash
# The main job on the bundled model and data: installs what is missing, builds, runs the
# quickstart experiment (every method on Fashion-MNIST test images with the bundled model, two
# masks), prints the comparison and timing tables once, draws an image grid and, where gnuplot is
# installed, the figures. Results land in results/quickstart/ (a rerun resumes and only redraws).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# Two worker processes, one shard each, merged at the end: on a CPU one process of this small
# model keeps the cores only partly busy.
build/copaint run experiments/quickstart.ini --jobs "${COPAINT_QUICKSTART_JOBS:-2}" "$@"
build/copaint report results/quickstart --timing
build/copaint export results/quickstart --grid --images 0,1 --masks half,expand \
  --out results/quickstart/grid.png
if command -v gnuplot > /dev/null; then
  build/copaint report results/quickstart --plots results/quickstart/plots > /dev/null 2>&1
  echo "quickstart: figures (PNG, PDF, SVG) in results/quickstart/plots/"
fi
echo "quickstart: tables above; image grid in results/quickstart/grid.png"
