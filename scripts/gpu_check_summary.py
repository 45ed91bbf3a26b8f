#!/usr/bin/env python3
"""Writes gpu_check.md and gpu_check.json from the logs and benchmark JSON of scripts/gpu_check.sh.

Usage: gpu_check_summary.py OUT_DIR DEVICE TESTS_RC VERIFY_RC SECONDS
"""
import json
import pathlib
import re
import sys


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bound_rows(out):
    rows = []
    for path in sorted(out.glob("bound_*.json")):
        precision = path.stem.split("_", 1)[1]
        data = load(path) or {}
        for b in data.get("benchmarks", []):
            if "CoPaintBound" not in b["name"]:
                continue
            rows.append({"case": b["name"], "precision": precision,
                         "seconds": b.get("seconds"), "bound_seconds": b.get("bound_seconds"),
                         "ratio": b.get("ratio"), "ratio_vs_conv": b.get("ratio_vs_conv"),
                         "forwards": b.get("forwards"), "backwards": b.get("backwards"),
                         "gemm_tflops": (b.get("gemm_flops_per_s") or 0) / 1e12,
                         "achieved_tflops": (b.get("achieved_flops_per_s") or 0) / 1e12,
                         "error": b.get("error_message")})
    return rows


def option_rows(out):
    data = load(out / "run_options.json") or {}
    cases = {}
    for b in data.get("benchmarks", []):
        m = re.match(r"BM_UNetRunOption/(\w+?)(ForwardBackward|Forward)/(\w+)/size:(\d+)/batch:(\d+)", b["name"])
        if not m or b.get("error_occurred"):
            continue
        model, pass_, variant, size, batch = m.groups()
        cases[(model, pass_, int(size), int(batch), variant)] = b
    rows = []
    for (model, pass_, size, batch, variant), b in sorted(cases.items()):
        base = cases.get((model, pass_, size, batch, "fp32"))
        rows.append({"model": model, "pass": pass_, "size": size, "batch": batch, "variant": variant,
                     "ms": b["real_time"], "ratio_vs_fp32": b["real_time"] / base["real_time"] if base else None,
                     "peak_bytes": b.get("peak_bytes")})
    return rows


def main():
    out, device, tests_rc, verify_rc, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    tests_log = (out / "device_tests.log").read_text(errors="replace") if (out / "device_tests.log").exists() else ""
    summary = {
        "device": device,
        "gpus": (out / "gpus.txt").read_text().strip() if (out / "gpus.txt").exists() else "",
        "seconds": seconds,
        "device_tests": {"exit": tests_rc, "lines": re.findall(r"^\[cuda\].*$", tests_log, re.M),
                         "skipped": len(re.findall(r"^\[  SKIPPED \]", tests_log, re.M)),
                         "result": (re.findall(r"^\[  (?:PASSED|FAILED)  \].*$", tests_log, re.M) or ["no result"])},
        "verify": {"exit": verify_rc, "cases": load(out / "verify.json")},
        "compute_bound": bound_rows(out),
        "run_options": option_rows(out),
    }
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = [f"# GPU check ({device})", "", f"GPUs: {summary['gpus'] or 'none'}; {seconds} s in all.", "",
          f"## Device tests (exit {tests_rc})", ""]
    md += [f"- {line}" for line in summary["device_tests"]["lines"]] or ["- no [cuda] lines (skipped: no GPU?)"]
    md += [f"- {line}" for line in summary["device_tests"]["result"]]
    md += ["", f"## copaint verify on {device} (exit {verify_rc})", ""]
    md += [(out / "verify.md").read_text() if (out / "verify.md").exists() else "no output"]
    md += ["## Compute bound of a CoPaint sample (time / (FLOPs / GEMM rate))", "",
           "| case | precision | seconds | bound s | ratio | ratio vs conv | fwd | bwd | GEMM TFLOP/s | achieved TFLOP/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["compute_bound"]:
        if r["error"]:
            md.append(f"| {r['case']} | {r['precision']} | {r['error']} |||||||| ")
            continue
        md.append(f"| {r['case']} | {r['precision']} | {r['seconds']:.3g} | {r['bound_seconds']:.3g} | {r['ratio']:.3g} | "
                  f"{r['ratio_vs_conv']:.3g} | {r['forwards']:.0f} | {r['backwards']:.0f} | {r['gemm_tflops']:.3g} | {r['achieved_tflops']:.3g} |")
    md += ["", "## Run options against fp32 (same model, pass and batch)", "",
           "| model | pass | size | batch | option | ms | ratio vs fp32 | peak MiB |", "|---|---|---:|---:|---|---:|---:|---:|"]
    for r in summary["run_options"]:
        ratio = f"{r['ratio_vs_fp32']:.3g}" if r["ratio_vs_fp32"] else "-"
        peak = f"{r['peak_bytes'] / 2**20:.0f}" if r["peak_bytes"] else "-"
        md.append(f"| {r['model']} | {r['pass']} | {r['size']} | {r['batch']} | {r['variant']} | {r['ms']:.4g} | {ratio} | {peak} |")
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
