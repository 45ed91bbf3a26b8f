#!/usr/bin/env python3
"""Writes gpu_check.md and gpu_check.json from what scripts/gpu_check.sh has produced so far.

Called before and after every step, so the summary always holds every finished step and names the
one that did not finish (started, no end line). Reads OUT/steps.jsonl (the steps' start and end
lines) and the steps' outputs: tests.log, verify.json, race_*.json, bound_*.json, run_options.json.

Usage: gpu_check_summary.py OUT_DIR DEVICE SECONDS
"""
import json
import pathlib
import re
import sys

STEPS = ["build", "tests", "verify", "race", "precision", "memory"]
TITLES = {"build": "Build (configure + the check's targets)", "tests": "Device tests",
          "verify": "copaint_verify on every shipped recording",
          "race": "Ours against the reference, same case, same machine",
          "precision": "A CoPaint sample per precision against the compute bound",
          "memory": "Peak memory and time of the UNet forward+backward by batch"}


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_steps(out):
    steps = {}
    try:
        lines = (out / "steps.jsonl").read_text().splitlines()
    except OSError:
        return steps
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        steps.setdefault(rec["step"], {}).update(rec)
    return steps


def state_of(rec):
    if not rec:
        return "not run (the check ended before it)"
    if "exit" not in rec:
        return f"did not finish (started at {rec['started']} s, limit {rec['limit']} s)"
    return f"{rec['status']} (exit {rec['exit']}, {rec['seconds']} s of {rec['limit']} s)"


def tests_result(out):
    log = (out / "tests.log").read_text(errors="replace") if (out / "tests.log").exists() else ""
    return {"passed": [int(n) for n in re.findall(r"^\[  PASSED  \] (\d+) test", log, re.M)],
            "failed": re.findall(r"^\[  FAILED  \] (\S+)", log, re.M),
            "skipped": re.findall(r"^\[  SKIPPED \] (\S+)", log, re.M),
            "cuda_lines": re.findall(r"^\[cuda\].*$", log, re.M)}


def race_rows(out):
    rows = []
    for method in ("copaint", "ddnm"):
        ours = load(out / f"race_ours_{method}.json") or {}
        bench = (ours.get("benchmarks") or [{}])[0]
        ref_text = (out / f"race_reference_{method}.json")
        ref = None
        if ref_text.exists():
            lines = [l for l in ref_text.read_text().splitlines() if l.startswith("{")]
            ref = json.loads(lines[-1]) if lines else None
        if not bench and not ref:
            continue
        row = {"method": method, "ours_seconds": bench.get("seconds"), "ours_forwards": bench.get("forwards"),
               "ours_backwards": bench.get("backwards"), "precision": bench.get("label")}
        if ref:
            row.update(ref_seconds=ref["seconds"], ref_forwards=ref["unet_forward"],
                       ref_backwards=ref["unet_backward"], steps=ref["steps"], torch=ref.get("torch"))
        if row.get("ours_seconds") and row.get("ref_seconds"):
            row["ours_over_reference"] = row["ours_seconds"] / row["ref_seconds"]
        rows.append(row)
    return rows


def bound_rows(out):
    rows = []
    for path in sorted(out.glob("bound_*.json")):
        precision = path.stem.split("_", 1)[1]
        for b in (load(path) or {}).get("benchmarks", []):
            if "CoPaintBound" not in b["name"]:
                continue
            steps = int(re.search(r"steps:(\d+)", b["name"]).group(1))
            rows.append({"case": b["name"], "precision": precision, "seconds": b.get("seconds"),
                         "seconds_per_step": (b.get("seconds") or 0) / steps,
                         "bound_seconds": b.get("bound_seconds"), "ratio": b.get("ratio"),
                         "forwards": b.get("forwards"), "backwards": b.get("backwards"),
                         "achieved_tflops": (b.get("achieved_flops_per_s") or 0) / 1e12,
                         "error": b.get("error_message")})
    return rows


def memory_rows(out):
    rows = []
    for b in (load(out / "run_options.json") or {}).get("benchmarks", []):
        m = re.match(r"BM_UNetRunOption/(\w+?)(ForwardBackward|Forward)/(\w+)/size:(\d+)/batch:(\d+)", b["name"])
        if m and not b.get("error_occurred"):
            rows.append({"case": b["name"], "batch": int(m.group(5)), "ms": b["real_time"],
                         "peak_bytes": b.get("peak_bytes")})
    return rows


def fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def render(out, device, seconds, steps, data):
    md = [f"# GPU check ({device})", "",
          f"GPUs: {data['gpus'] or 'none'}; {seconds} s so far; step limits: {data['limits']}.", "",
          "| step | result |", "|---|---|"]
    md += [f"| {s} | {state_of(steps.get(s))} |" for s in STEPS]
    t = data["tests"]
    md += ["", f"## {TITLES['tests']}", "",
           f"passed {sum(t['passed'])}, failed {len(t['failed'])} {' '.join(t['failed'])}, "
           f"skipped {len(t['skipped'])}"]
    md += [f"- {line}" for line in t["cuda_lines"]]
    md += ["", f"## {TITLES['verify']}", ""]
    cases = data["verify"] if isinstance(data["verify"], list) else None
    if cases:
        md += ["| case | method | x_prev | x_opt | pred_x0 | sample | trajectory | fwd ours/ref | passed |",
               "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for c in cases:
            md.append(f"| {c['case']} | {c['method']} | {fmt(c.get('x_prev_error'))} | {fmt(c.get('x_opt_error'))} | "
                      f"{fmt(c.get('pred_x0_error'))} | {fmt(c.get('sample_error'))} | {fmt(c.get('trajectory_error'))} | "
                      f"{c.get('forwards')}/{c.get('reference_forwards')} | {c.get('passed')} {c.get('failure') or ''} |")
        worst = max((c.get(k) or 0) for c in cases for k in ("x_prev_error", "sample_error", "trajectory_error"))
        md.append(f"\n{sum(1 for c in cases if c.get('passed'))} of {len(cases)} cases passed; worst error {worst:.3g}")
    else:
        md.append("no verify.json")
    md += ["", f"## {TITLES['race']}", "",
           "| method | steps | precision | ours s | reference s | ours / reference | fwd ours/ref | bwd ours/ref |",
           "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in data["race"]:
        md.append(f"| {r['method']} | {r.get('steps', '-')} | {r.get('precision') or '-'} | {fmt(r.get('ours_seconds'))} | "
                  f"{fmt(r.get('ref_seconds'))} | {fmt(r.get('ours_over_reference'))} | "
                  f"{fmt(r.get('ours_forwards'), '.0f')}/{r.get('ref_forwards', '-')} | "
                  f"{fmt(r.get('ours_backwards'), '.0f')}/{r.get('ref_backwards', '-')} |")
    md += ["", f"## {TITLES['precision']}", "",
           "| case | precision | s per step | bound s | time / bound | fwd | bwd | TFLOP/s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["precision"]:
        if r["error"]:
            md.append(f"| {r['case']} | {r['precision']} | {r['error']} ||||||")
        else:
            md.append(f"| {r['case']} | {r['precision']} | {fmt(r['seconds_per_step'])} | {fmt(r['bound_seconds'])} | "
                      f"{fmt(r['ratio'])} | {fmt(r['forwards'], '.0f')} | {fmt(r['backwards'], '.0f')} | {fmt(r['achieved_tflops'])} |")
    md += ["", f"## {TITLES['memory']}", "", "| case | batch | ms | peak MiB |", "|---|---:|---:|---:|"]
    for r in data["memory"]:
        peak = fmt(r["peak_bytes"] / 2**20, ".0f") if r["peak_bytes"] else "- (CPU: not measured)"
        md.append(f"| {r['case']} | {r['batch']} | {r['ms']:.4g} | {peak} |")
    return "\n".join(md) + "\n"


def main():
    out, device, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    steps = read_steps(out)
    data = {"device": device, "seconds": seconds,
            "gpus": (out / "gpus.txt").read_text().strip() if (out / "gpus.txt").exists() else "",
            "limits": __import__("os").environ.get("COPAINT_CHECK_LIMITS", ""),
            "steps": {s: steps.get(s) for s in STEPS}, "tests": tests_result(out),
            "verify": load(out / "verify.json"), "race": race_rows(out), "precision": bound_rows(out),
            "memory": memory_rows(out)}
    md = render(out, device, seconds, steps, data)
    # Written through a rename: a check killed mid-write never leaves half a file.
    for name, text in (("gpu_check.json", json.dumps(data, indent=2) + "\n"), ("gpu_check.md", md)):
        tmp = out / (name + ".partial")
        tmp.write_text(text)
        tmp.replace(out / name)


if __name__ == "__main__":
    main()
