#!/usr/bin/env bash
# Fails when the tracked tree (the files in git's index) is larger than the limit, naming the
# largest files. The tree must travel to a GPU machine (at most 64 MiB sent with what the GPU check
# carries), so it stays at most 56 MiB: large fixtures go into tests/fixtures/archives
# (scripts/pack_fixtures.sh), third-party weights and data never into the tree.
# Usage: scripts/check_tree_size.sh [LIMIT_MIB]   (default 56)
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib="${1:-56}"
limit=$((limit_mib * 1024 * 1024))
sizes=$(git ls-files -s -z | tr '\0' '\n' | awk '{split($0, a, "\t"); split(a[1], b, " "); print b[2] " " a[2]}' |
  git cat-file --batch-check='%(objectsize) %(rest)' 2>/dev/null || true)
if [[ -z "$sizes" ]]; then
  echo "tree size: no git index here, not checked"
  exit 0
fi
total=$(awk '{s += $1} END {print s + 0}' <<<"$sizes")
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
if ((total > limit)); then
  echo "tree size: ERROR: the tracked files take $(mib "$total") MiB, over the $limit_mib MiB limit;" \
       "the largest:" >&2
  sort -rn <<<"$sizes" | head -10 | while read -r size path; do
    echo "  $(mib "$size") MiB  $path" >&2
  done
  echo "tree size: pack large fixtures (scripts/pack_fixtures.sh) or drop what a test can recompute" >&2
  exit 1
fi
echo "tree size: $(mib "$total") MiB tracked, limit $limit_mib MiB"
