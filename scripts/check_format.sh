#!/usr/bin/env bash
# Checks that every tracked C++ file is formatted as the repo's .clang-format says; names the files
# that are not and how to fix them. scripts/check_format.sh --fix reformats them in place.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format not found (scripts/setup.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' 2>/dev/null || find . -name '*.cpp' -o -name '*.h' | grep -v '^./build')
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
  echo "format: reformatted ${#files[@]} files"
  exit 0
fi
# One clang-format run; each file that would change is named in its "file:line:col: error" lines.
mapfile -t bad < <(clang-format --dry-run -Werror "${files[@]}" 2>&1 | grep -oE '^[^:]+:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort -u || true)
if ((${#bad[@]})); then
  echo "format: ${#bad[@]} file(s) differ from .clang-format: ${bad[*]}" >&2
  echo "format: run scripts/check_format.sh --fix (clang-format -i) and commit the result" >&2
  exit 1
fi
echo "format: ${#files[@]} files match .clang-format"
