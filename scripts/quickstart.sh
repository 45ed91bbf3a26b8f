#!/usr/bin/env bash
# The main job on the bundled model and data: installs what is missing, builds, runs the
# quickstart experiment (every method on Fashion-MNIST test images with the bundled model, a few
# masks), and prints the comparison tables. Results land in results/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/copaint run experiments/quickstart.ini "$@"
build/copaint report results/quickstart --format markdown
build/copaint report results/quickstart --timing
