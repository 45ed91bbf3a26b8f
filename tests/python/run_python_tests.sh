#!/bin/sh
# ctest entry of the Python results reader's test: runs test_results_reader.py with the first
# interpreter that has numpy, pandas and h5py ($COPAINT_PYTHON, python3 on PATH, /usr/bin/python3;
# Debian: python3-pandas python3-h5py), or skips (exit 77) saying what is missing.
#   sh tests/python/run_python_tests.sh build/copaint
here=$(dirname "$0")
for py in ${COPAINT_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import numpy, pandas, h5py' 2>/dev/null; then
    exec "$py" "$here/test_results_reader.py" "$@"
  fi
done
echo "skipped: no Python 3 with numpy, pandas and h5py (Debian: apt-get install python3-pandas python3-h5py)"
exit 77
