"""Test of python/copaint_results.py and of the README's Python snippets against real results.

    python3 tests/python/test_results_reader.py build/copaint

Runs a tiny experiment (the analytic gaussian model on 2 bundled Fashion-MNIST images) as 2
shards, merges it, and checks the reader on the shards, on the merged file and on a results
folder written before schema version 2 (tests/fixtures/results_v1, read without migrating it).
"""

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import copaint_results as cr  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "results_v1")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(copaint, *args, cwd=None):
    r = subprocess.run([copaint] + list(args), capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise SystemExit("copaint %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def python_blocks(readme, heading):
    """The ```python blocks of the section of `readme` whose heading contains `heading`."""
    text = open(readme).read()
    start = text.find(heading)
    if start < 0:
        raise SystemExit("%s: no section '%s'" % (readme, heading))
    nxt = re.search(r"\n#+ ", text[start + len(heading):])
    section = text[start: start + len(heading) + (nxt.start() if nxt else len(text))]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def exec_snippet(code, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        scope = {}
        exec(compile(code, "<README snippet>", "exec"), scope)
        return scope
    finally:
        os.chdir(old)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: test_results_reader.py COPAINT_BINARY")
    copaint = os.path.abspath(sys.argv[1])
    if not os.path.exists("/usr/share/datasets/fashion-mnist"):
        print("skipped: no Fashion-MNIST (Debian's dataset-fashion-mnist)")
        return 77
    tmp = tempfile.mkdtemp(prefix="copaint_py_")
    try:
        # --- a folder written before schema version 2, read as it is (read-only, no migration)
        old = os.path.join(tmp, "old")
        shutil.copytree(FIXTURE, old)
        df = cr.load_scores(old)
        check(len(df) == 12, "v1 fixture: 6 samples x 2 metrics, got %d" % len(df))
        check(set(df.method) == {"copaint", "blended"}, "v1 methods")
        check(sorted(df[df.method == "copaint"]["settings.G"].unique()) == [1, 2],
              "v1 settings.G typed")
        check(df["settings.lr_xt"].dropna().map(type).eq(float).all(), "v1 lr_xt is float")
        img = cr.get_images(old, "copaint", "half", image=1, settings={"G": 2})
        check(img["sample"].dtype == np.uint8 and img["sample"].shape == (8, 8, 3),
              "v1 image shape %s" % (img["sample"].shape,))
        check(set(np.unique(img["mask"])) <= {0, 1} and img["mask"].shape == (8, 8, 1), "mask 0/1")
        check(abs(img["mask"].mean() - 0.5) < 1e-9, "half mask")
        try:
            cr.get_images(old, "copaint", "half", image=1)
            check(False, "ambiguous selection must raise")
        except LookupError as e:
            check("G=1" in str(e) and "G=2" in str(e), "ambiguity names the variants: %s" % e)
        import sqlite3
        con = sqlite3.connect(os.path.join(old, "results.sqlite"))
        check(con.execute("PRAGMA user_version").fetchone()[0] == 1, "reader did not migrate")
        con.close()

        # --- a fresh sharded run, then merged
        exp = os.path.join(FIXTURE, "v1.ini")
        out = os.path.join(tmp, "results", "quickstart")
        for shard in ("0/2", "1/2"):
            run(copaint, "run", exp, "--out", out, "--shard", shard, "--device", "cpu", "-q")
        shards = cr.load_scores(out)
        check(len(shards) == 12, "shards: 12 score rows, got %d" % len(shards))
        check(set(shards.db.map(os.path.basename)) ==
              {"results.shard-0-of-2.sqlite", "results.shard-1-of-2.sqlite"}, "both shards read")
        run(copaint, "merge", out)
        both = cr.load_scores(out)  # merged file and shards: each score once
        check(len(both) == 12, "merged + shards deduplicated, got %d" % len(both))
        merged = cr.load_scores(os.path.join(out, "results.sqlite"))
        key = ["cell_key", "image_index", "sample_index", "metric"]
        a = shards.sort_values(key).reset_index(drop=True)
        b = merged.sort_values(key).reset_index(drop=True)
        check((a[key] == b[key]).all().all() and np.array_equal(a.value, b.value),
              "shards == merged, bit for bit")
        check(merged.peak_memory_bytes.eq(0).all(), "peak_memory_bytes on the CPU")
        # The method x mask means agree with `copaint report --format csv`.
        csv = run(copaint, "report", out, "--format", "csv")
        rep = pd.read_csv(io.StringIO(csv), keep_default_na=False)
        means = merged.groupby(["method", "variant", "mask", "metric"]).value.mean()
        check(len(rep) == len(means), "report rows %d == groups %d" % (len(rep), len(means)))
        for _, r in rep.iterrows():
            m = means.get((r["method"], str(r["settings"]), r["mask"], r["metric"]))
            check(m is not None and abs(m - float(r["mean"])) <= 1e-8 * max(1.0, abs(m)),
                  "report mean %s [%s] %s %s: %s vs %s" % (r["method"], r["settings"], r["mask"],
                                                          r["metric"], r["mean"], m))
        import h5py
        row = merged.iloc[0]
        with h5py.File(row.h5_file, "r") as f:  # merged files keep the datasets' attributes
            a = dict(f[row.sample_path].attrs)
            check(a.get("kind") == "sample" and a.get("method") == row.method and
                  a.get("mask") == row["mask"] and int(a.get("image_index")) == row.image_index and
                  a.get("cell_key") == row.cell_key, "sample attributes %r" % a)
            check(__import__("json").loads(a["settings"]) == row.settings_dict, "settings attr")
            check(dict(f[row.mask_path].attrs).get("kind") == "mask", "mask attributes")
            group = dict(f[row.sample_path.rsplit("/", 1)[0]].attrs)  # the cell's group
            check(group.get("kind") == "cell" and group.get("method") == row.method and
                  group.get("cell_key") == row.cell_key, "cell group attributes %r" % group)
            check(dict(f[row.mask_path.rsplit("/", 1)[0]].attrs).get("kind") == "masks" and
                  dict(f[row.reference_path.rsplit("/", 1)[0]].attrs).get("kind") == "references"
                  and "layout" in f.attrs, "group and root attributes")
            check(dict(f[row.reference_path].attrs).get("image_id") == row.image_id,
                  "reference attributes")
            # The input hashes are SHA-256 of the stored bytes (framework/core/input_hash.h).
            import hashlib
            ref_sha = hashlib.sha256(f[row.reference_path][()].tobytes()).hexdigest()
            mask_sha = hashlib.sha256((f[row.mask_path][()][..., 0] > 0).astype("uint8")
                                      .tobytes()).hexdigest()
            check(ref_sha == row.image_sha256 and mask_sha == row.mask_sha256 and
                  dict(f[row.reference_path].attrs).get("sha256") == ref_sha,
                  "input hashes %s %s vs %s %s" % (ref_sha, mask_sha, row.image_sha256,
                                                    row.mask_sha256))
        stack = cr.stack_samples(cr.load_samples(out, status="ok"))
        check(stack.shape == (6, 8, 8, 3) and stack.dtype == np.uint8, "stack %s" % (stack.shape,))
        # results.cells.h5: each cell stacked (virtual over results.h5), masks 0/1, indexes.
        for _, c in cr.load_cells(out).iterrows():
            cell = cr.load_cell(out, c.method, c["mask"], settings=c.variant_dict or None)
            rows = cr.load_samples(out, status="ok")
            rows = rows[rows.cell_key == c.cell_key].sort_values(["image_index", "sample_index"])
            n = len(rows)
            check(n > 0 and cell["samples"].shape == (n, 8, 8, 3), "cell %s stacked" % c.cell_key)
            check(np.array_equal(cell["samples"], cr.stack_samples(rows)), "cell = its samples")
            check(list(cell["image_index"]) == list(rows.image_index) and
                  list(cell["sample_index"]) == list(rows.sample_index), "cell indexes")
            check(cell["masks"].shape == (n, 8, 8, 1) and set(np.unique(cell["masks"])) <= {0, 1},
                  "cell masks 0/1")
            first = cr.get_images(out, c.method, c["mask"], int(rows.image_index.iloc[0]),
                                  int(rows.sample_index.iloc[0]), settings=c.variant_dict or None)
            check(np.array_equal(cell["masks"][0], first["mask"]) and
                  np.array_equal(cell["references"][0], first["reference"]), "cell mask, ref")
        # --float-samples: rescoring PSNR from the stored float32 samples gives the stored scores
        # (from uint8 they differ by the rounding).
        fl = os.path.join(tmp, "float")
        for shard in ("0/2", "1/2"):
            run(copaint, "run", exp, "--out", fl, "--shard", shard, "--device", "cpu", "-q",
                "--float-samples")
        run(copaint, "merge", fl)
        scores = cr.load_scores(fl)
        worst = 0.0
        for _, r in scores[scores.metric == "psnr"].iterrows():
            im = cr.get_images(fl, r.method, r["mask"], r.image_index, r.sample_index,
                               settings=r.variant_dict or None)
            x = im["sample_float"].astype(np.float64)
            ref = im["reference"].astype(np.float64) / 127.5 - 1
            worst = max(worst, abs(10 * np.log10(1 / (((x - ref) / 2) ** 2).mean()) - r.value))
        check(worst < 1e-4, "psnr rescored from float samples: max error %g dB" % worst)
        c0 = cr.load_cells(fl).iloc[0]
        cell = cr.load_cell(fl, c0.method, c0["mask"], settings=c0.variant_dict or None)
        check(cell.get("samples_float") is not None and
              cell["samples_float"].shape == cell["samples"].shape, "cell samples_float")
        runs = cr.load_runs(os.path.join(out, "results.sqlite"))
        check("host" in runs and runs.host.notna().all(), "runs have a host")
        # Metrics over a set (schema 5): none here (no fid/kid in the grid), then a row written
        # as the program writes it comes back with its cell.
        check(cr.load_set_scores(out).empty, "no set scores without fid/kid")
        import sqlite3
        con = sqlite3.connect(os.path.join(out, "results.sqlite"))
        cell_id, cell_key = con.execute("SELECT id, cell_key FROM cell LIMIT 1").fetchone()
        con.execute("INSERT INTO set_score (cell_id, metric, value, stddev, higher_is_better, "
                    "n_samples, n_references, note, feature_key, inputs_sha256, computed) "
                    "VALUES (?, 'fid', 12.5, NULL, 0, 4, 2, 'n < 2048', 'k', 'h', 't')",
                    (cell_id,))
        con.commit()
        con.close()
        sets = cr.load_set_scores(out)
        check(len(sets) == 1 and sets.cell_key[0] == cell_key and sets.value[0] == 12.5 and
              np.isnan(sets.stddev[0]) and sets.n_samples[0] == 4, "set score read: %r" % (sets,))

        # --- the README snippets, run where results/quickstart is this run
        for readme, heading in ((os.path.join(ROOT, "README.md"), "Results in Python"),
                                (os.path.join(ROOT, "results", "README.md"), "h5py")):
            blocks = python_blocks(readme, heading)
            check(len(blocks) >= 1, "%s has a python block under %s" % (readme, heading))
            for code in blocks:
                code = code.replace('sys.path.insert(0, "python")',
                                    'sys.path.insert(0, %r)' % os.path.join(ROOT, "python"))
                exec_snippet(code, tmp)
        scope = exec_snippet("\n".join(python_blocks(os.path.join(ROOT, "README.md"),
                                                     "Results in Python")[:1]).replace(
            'sys.path.insert(0, "python")', 'sys.path.insert(0, %r)' % os.path.join(ROOT, "python")),
            tmp)
        table = scope.get("table")
        check(isinstance(table, pd.DataFrame) and set(table.columns) == {"half"} and
              {"copaint", "blended"} <= set(table.index.get_level_values(0)),
              "README table is method x mask: %r" % (table,))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("ok: python results reader")
    return 0


if __name__ == "__main__":
    sys.exit(main())
