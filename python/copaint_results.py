"""Read copaint results folders from Python: scores as a tidy pandas DataFrame, images as arrays.

Pure Python (sqlite3, numpy, pandas, h5py; Debian's python3-pandas and python3-h5py suffice),
nothing to build. Put this folder on the path (``sys.path.insert(0, "python")`` from the
repository root, or ``PYTHONPATH=python``)::

    from copaint_results import load_scores
    df = load_scores("results/quickstart")          # results.sqlite and/or every shard
    df[df.metric == "psnr"].pivot_table(index="method", columns="mask", values="value")

``load_scores`` gives one row per (sample, metric): the cell's method, variant (the swept
settings, e.g. ``G=5``), dataset, mask, model, seed, the image and sample index, cost columns and
the method's resolved settings as typed ``settings.<key>`` columns (numbers as numbers, booleans
as booleans, lists as lists). ``load_samples`` gives one row per sample (no scores).
``get_images`` fetches the stored sample, reference and mask of one (method, settings, mask,
image, sample) as numpy arrays; ``load_cell`` a whole cell at once, stacked ([N,H,W,C]), from
the folder's ``results.cells.h5``.

Databases of schema version 1 (written before the JSON columns existed) are read too: their
settings texts are typed here the way the program types them.
"""

import json
import os
import re
import sqlite3

import numpy as np
import pandas as pd

__all__ = ["find_databases", "load_scores", "load_samples", "load_cells", "load_runs",
           "get_images", "stack_samples", "load_cell", "typed_value", "settings_from_text"]

_NUMBER = re.compile(r"^[+-]?[0-9.eE+-]*[0-9][0-9.eE+-]*$")


def _scalar(v):
    if v == "true":
        return True
    if v == "false":
        return False
    if _NUMBER.match(v):
        try:
            if not any(c in v for c in ".eE"):
                return int(v)
            f = float(v)
            if np.isfinite(f):
                return f
        except ValueError:
            pass
    return v


def typed_value(text):
    """A setting's canonical text as a typed value: 8 -> 8, 0.02 -> 0.02, true -> True,
    1,2,2 -> [1, 2, 2], anything else the string."""
    text = text.strip()
    if "," in text:
        return [_scalar(i.strip()) for i in text.split(",") if i.strip()]
    low = text.lower()
    return _scalar(low if low in ("true", "false") else text)


def settings_from_text(text):
    """A canonical settings text (``key = value`` lines) as a dict of typed values."""
    out = {}
    for line in (text or "").splitlines():
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = typed_value(v)
    return out


def _variant_from_label(label):
    out = {}
    for item in (label or "").split(", "):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = typed_value(v)
    return out


def find_databases(path):
    """The result databases of a folder (results.sqlite and results.shard-*.sqlite), or [path]
    for a file. Raises FileNotFoundError when there is none."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError("results '%s': no such file or folder" % path)
    names = sorted(n for n in os.listdir(path)
                   if n == "results.sqlite" or (n.startswith("results.shard-") and n.endswith(".sqlite")))
    if not names:
        raise FileNotFoundError("results folder '%s' holds no results.sqlite or "
                                "results.shard-*.sqlite" % path)
    return [os.path.join(path, n) for n in names]


def _connect(db):
    # Read-only: never migrates or locks the file against a running `copaint run`.
    return sqlite3.connect("file:%s?mode=ro" % os.path.abspath(db), uri=True)


def _columns(con, table):
    return {r[1] for r in con.execute("PRAGMA table_info(%s)" % table)}


def _read_cells(con):
    cols = _columns(con, "cell")
    variant = "variant" if "variant" in cols else "axes"
    q = ("SELECT id AS cell_id, cell_key, position, method, %s AS variant, settings, settings_hash, "
         "dataset, dataset_settings, mask, mask_settings, model, model_settings, seed, mask_seed%s "
         "FROM cell" % (variant, ", settings_json, variant_json" if "settings_json" in cols else ""))
    cells = pd.read_sql_query(q, con)
    if "settings_json" in cells:
        cells["settings_dict"] = [json.loads(s) if s else settings_from_text(t)
                                  for s, t in zip(cells.settings_json, cells.settings)]
        cells["variant_dict"] = [json.loads(s) if s else _variant_from_label(t)
                                 for s, t in zip(cells.variant_json, cells.variant)]
        cells = cells.drop(columns=["settings_json", "variant_json"])
    else:
        cells["settings_dict"] = [settings_from_text(t) for t in cells.settings]
        cells["variant_dict"] = [_variant_from_label(t) for t in cells.variant]
    cells["variant"] = cells["variant"].fillna("")
    return cells


def load_cells(path):
    """One row per cell (deduplicated by cell_key over the databases), with the settings and the
    variant as dicts (``settings_dict``, ``variant_dict``) and ``settings.<key>`` columns."""
    frames = []
    for db in find_databases(path):
        con = _connect(db)
        try:
            frames.append(_read_cells(con))
        finally:
            con.close()
    cells = pd.concat(frames, ignore_index=True).drop_duplicates("cell_key").drop(columns="cell_id")
    return _with_settings_columns(cells.sort_values(["position", "cell_key"]).reset_index(drop=True))


def _with_settings_columns(df):
    flat = pd.json_normalize(list(df["settings_dict"])).add_prefix("settings.")
    flat.index = df.index
    return pd.concat([df, flat], axis=1)


def load_runs(path):
    """Every `copaint run` invocation (the experiment table) of every database, with ``db``."""
    frames = []
    for db in find_databases(path):
        con = _connect(db)
        try:
            runs = pd.read_sql_query("SELECT * FROM experiment", con)
        finally:
            con.close()
        runs.insert(0, "db", db)
        frames.append(runs)
    return pd.concat(frames, ignore_index=True)


def _read(path, with_scores, status):
    frames = []
    for db in find_databases(path):
        con = _connect(db)
        try:
            cells = _read_cells(con)
            scols = _columns(con, "sample")
            peak = "peak_memory_bytes" if "peak_memory_bytes" in scols else "peak_memory"
            # The input hashes (schema 3): NULL (None) for databases written before.
            hashes = ("p.image_sha256, p.mask_sha256" if "image_sha256" in scols
                      else "NULL AS image_sha256, NULL AS mask_sha256")
            # Non-finite gradient steps (schema 4): NULL (NaN) without gradients or before.
            hashes += (", p.nonfinite_grads" if "nonfinite_grads" in scols
                       else ", NULL AS nonfinite_grads")
            q = ("SELECT p.id AS sample_id, p.cell_id, p.image_index, p.image_id, p.sample_index, "
                 "p.run_id, p.status, p.error, p.seconds, p.forwards, p.backwards, "
                 "p.%s AS peak_memory_bytes, p.h5_file, p.sample_path, p.reference_path, "
                 "p.mask_path, %s FROM sample p" % (peak, hashes))
            if with_scores:
                q = q.replace("FROM sample p", ", s.metric, s.value, s.higher_is_better "
                              "FROM sample p JOIN score s ON s.sample_id = p.id")
            rows = pd.read_sql_query(q, con)
        finally:
            con.close()
        folder = os.path.dirname(os.path.abspath(db))
        rows["h5_file"] = [os.path.join(folder, f) if f else "" for f in rows.h5_file.fillna("")]
        rows["db"] = db
        frames.append(rows.merge(cells, on="cell_id", how="left"))
    df = pd.concat(frames, ignore_index=True)
    if status is not None:
        df = df[df.status == status]
    key = ["cell_key", "image_index", "sample_index"] + (["metric"] if with_scores else [])
    # A merged results.sqlite beside its shards holds the same rows: keep one (an ok one first).
    df = df.sort_values(["status"], key=lambda s: s != "ok", kind="stable").drop_duplicates(key)
    if with_scores:
        df["higher_is_better"] = df["higher_is_better"].astype(bool)
    df = df.drop(columns=["cell_id", "sample_id"]).sort_values(
        ["position", "cell_key", "image_index", "sample_index"] + (["metric"] if with_scores else []))
    return _with_settings_columns(df.reset_index(drop=True))


def load_scores(path, status="ok"):
    """Tidy scores: one row per (sample, metric) of every database of ``path`` (a results folder
    with results.sqlite and/or shards, or one .sqlite file). ``status=None`` keeps error rows of
    samples that have scores (none do by construction)."""
    return _read(path, True, status)


def load_samples(path, status=None):
    """One row per stored sample (ok and error; ``status='ok'`` keeps ok ones), no scores."""
    return _read(path, False, status)


def _matches(settings, wanted):
    for k, v in (wanted or {}).items():
        if k not in settings:
            return False
        have = settings[k]
        if isinstance(v, str) and not isinstance(have, str):
            v = typed_value(v)
        if isinstance(have, float) or isinstance(v, float):
            try:
                if not np.isclose(float(have), float(v), rtol=1e-12, atol=0):
                    return False
                continue
            except (TypeError, ValueError):
                return False
        if have != v:
            return False
    return True


def _select(samples, method=None, settings=None, mask=None, image=None, sample=None, dataset=None,
            seed=None):
    df = samples
    for col, val in (("method", method), ("mask", mask), ("image_index", image),
                     ("sample_index", sample), ("dataset", dataset), ("seed", seed)):
        if val is not None:
            df = df[df[col] == val]
    if settings:
        df = df[[_matches(s, settings) for s in df.settings_dict]]
    return df


def _read_h5(file, dataset):
    import h5py
    with h5py.File(file, "r") as f:
        return f[dataset][()]


def get_images(path, method, mask, image, sample=0, settings=None, dataset=None, seed=None,
               samples=None):
    """The stored images of one sample as numpy arrays: ``{"sample": uint8 [H,W,C], "reference":
    uint8 [H,W,C], "mask": uint8 [H,W,1] with 1 = known pixel, "row": the sample's row}``, and
    ``"sample_float"`` (float32 [H,W,C] in [-1,1], exactly as scored) when the run stored it
    (``copaint run --float-samples``).
    ``settings`` selects a variant by the method's settings (``{"G": 2}``). Raises LookupError
    when no stored ok sample, or more than one, matches."""
    rows = samples if samples is not None else load_samples(path, status="ok")
    rows = _select(rows, method, settings, mask, image, sample, dataset, seed)
    rows = rows[rows.status == "ok"]
    if len(rows) != 1:
        raise LookupError("%d stored samples match method=%r settings=%r mask=%r image=%r sample=%r"
                          "%s" % (len(rows), method, settings, mask, image, sample,
                                  "" if len(rows) == 0 else
                                  " (give settings, dataset or seed: variants %s)"
                                  % sorted(set(rows.variant))))
    r = rows.iloc[0]
    import h5py
    with h5py.File(r.h5_file, "r") as f:
        m = f[r.mask_path][()]
        out = {"sample": f[r.sample_path][()], "reference": f[r.reference_path][()],
               "mask": (m > 0).astype(np.uint8), "row": r}
        float_path = f[r.sample_path].attrs.get("float_path")
        if float_path is not None and float_path in f:  # run --float-samples
            out["sample_float"] = f[float_path][()]
    return out


def stack_samples(rows):
    """The sample images of the rows of ``load_samples``/``load_scores`` (one per distinct sample,
    in row order) as one uint8 array [N,H,W,C]."""
    rows = rows.drop_duplicates(["cell_key", "image_index", "sample_index"])
    import h5py
    out, files = [], {}
    try:
        for file, ds in zip(rows.h5_file, rows.sample_path):
            if file not in files:
                files[file] = h5py.File(file, "r")
            out.append(files[file][ds][()])
    finally:
        for f in files.values():
            f.close()
    return np.stack(out) if out else np.zeros((0, 0, 0, 0), np.uint8)


def load_cell(path, method, mask, settings=None, dataset=None, seed=None):
    """Every stored ok sample of one cell, stacked, from ``<path>/results.cells.h5`` (written by
    ``copaint run``, ``merge`` and ``score`` beside results.h5): ``{"samples": uint8 [N,H,W,C],
    "references": uint8 [N,H,W,C], "masks": uint8 [N,H,W,1] with 1 = known pixel,
    "image_index": int64 [N], "sample_index": int64 [N], "cell": the cell's row}``, plus
    ``"samples_float"`` (float32 [N,H,W,C]) after ``copaint run --float-samples``. ``settings``
    selects a variant (``{"G": 2}``). Raises LookupError unless exactly one cell matches."""
    import h5py
    cells = load_cells(path)
    for col, val in (("method", method), ("mask", mask), ("dataset", dataset), ("seed", seed)):
        if val is not None:
            cells = cells[cells[col] == val]
    if settings:
        cells = cells[[_matches(s, settings) for s in cells.settings_dict]]
    if len(cells) != 1:
        raise LookupError("%d cells match method=%r mask=%r settings=%r (variants %s)"
                          % (len(cells), method, mask, settings, sorted(set(cells.variant))))
    cell = cells.iloc[0]
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    with h5py.File(os.path.join(folder, "results.cells.h5"), "r") as f:
        g = f["cells"][cell.cell_key]
        out = {name: g[name][()] for name in
               ("samples", "references", "masks", "image_index", "sample_index", "samples_float")
               if name in g}
    out["cell"] = cell
    return out
