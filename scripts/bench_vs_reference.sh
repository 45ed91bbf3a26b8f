#!/usr/bin/env bash
# Times the whole copaint_g2_n1 fixture run (tiny trained UNet, 49 CoPaint steps) with our
# copaint_benchmark and with the reference implementation (../shared/tools/reference/ref_bench.py on
# a user-provided checkout of UCSB-NLP-Chang/CoPaint), one after the other with the same intra-op
# thread count, and prints both wall times and the ratio ours / reference.
#
#   scripts/bench_vs_reference.sh REF_CHECKOUT [THREADS=1] [BUILD_DIR=build] [--with-aten]
#
# --with-aten also times our run with the oneDNN routing off (plain ATen ops, bitwise the
# reference's arithmetic). Needs: copaint_benchmark built in BUILD_DIR; Debian's python3-torch,
# python3-torchvision (the reference imports it), python3-numpy, python3-yaml, python3-tqdm,
# python3-pil; the shared folder (COPAINT_SHARED_DIR, default ../shared) with tools/reference and
# fixtures. Nothing of the reference is kept here. Run it on an otherwise idle machine: the two
# runs are sequential, so other load skews the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ref="$(cd "$1" && pwd)"
threads="${2:-1}"
build="${3:-build}"
with_aten=0
[[ "${4:-}" == "--with-aten" ]] && with_aten=1
shared="${COPAINT_SHARED_DIR:-../shared}"
bench="$build/benchmarks/copaint_benchmark"
ref_bench="$shared/tools/reference/ref_bench.py"
[[ -x "$bench" ]] || { echo "no $bench: build the copaint_benchmark target" >&2; exit 1; }
[[ -f "$ref_bench" ]] || { echo "no $ref_bench (set COPAINT_SHARED_DIR)" >&2; exit 1; }
[[ -d "$ref/guided_diffusion" ]] || { echo "$ref is not a CoPaint checkout" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ours: wall seconds of one whole run, from Google Benchmark's JSON.
ours() {  # $1 = onednn switch (0/1)
  "$bench" --benchmark_filter="BM_CoPaintRun_g2_n1/threads:${threads}/onednn:$1/" \
    --benchmark_format=json >"$tmp/ours$1.json" 2>/dev/null
  /usr/bin/python3 - "$tmp/ours$1.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"][0]
scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[b["time_unit"]]
print(f'{b["real_time"] * scale:.3f} {int(b["forwards"])} {int(b["backwards"])} {b["max_err_vs_fixture"]:.3g}')
EOF
}

echo "threads: $threads; case: copaint_g2_n1; machine load: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r our_s our_f our_b our_err < <(ours 1)
echo "ours (oneDNN):      ${our_s} s, ${our_f} forwards, ${our_b} backwards, max error vs fixture ${our_err}"
if ((with_aten)); then
  read -r aten_s aten_f aten_b aten_err < <(ours 0)
  echo "ours (plain ATen):  ${aten_s} s, ${aten_f} forwards, ${aten_b} backwards, max error vs fixture ${aten_err}"
fi
/usr/bin/python3 "$ref_bench" "$ref" "$shared/fixtures" copaint_g2_n1 "$threads" >"$tmp/ref.json"
read -r ref_s ref_f ref_b ref_err < <(/usr/bin/python3 - "$tmp/ref.json" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f'{r["seconds"]:.3f} {r["unet_forward"]} {r["unet_backward"]} {r["max_err_vs_fixture"]:.3g}')
EOF
)
echo "reference:          ${ref_s} s, ${ref_f} forwards, ${ref_b} backwards, max error vs fixture ${ref_err}"
/usr/bin/python3 -c "
o, r = $our_s, $ref_s
print(f'ours / reference = {o / r:.3f} (reference is {r / o:.2f}x our time)')"
if ((with_aten)); then
  /usr/bin/python3 -c "print(f'ours plain ATen / reference = {$aten_s / $ref_s:.3f}')"
fi
