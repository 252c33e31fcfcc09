"""vigil's drift numbers and time next to Evidently's, on the same data.

    python benches/compare/evidently_drift.py [--vigil target/release/vigil] [--features 100]

Needs numpy, pandas and evidently (pip install evidently), and a release build of vigil
(cargo build --release). For two references (800 rows: Evidently's default is KS; 5,000 rows:
the normed Wasserstein distance), it writes a reference and a current data set of numeric
features (a third of them shifted by 0.1 to 0.5 standard deviations, seed 1) as CSV, runs
`vigil drift` and Evidently's DataDriftPreset (legacy engine, default settings) on them, and
prints per scenario: each tool's wall time, the features whose method agrees, the largest
difference of statistic (p-value for KS), and how many drift verdicts agree.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def data(n_ref, n_cur, features, seed=1):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({f"f{j}": rng.normal(j, 1.0, n_ref) for j in range(features)})
    cur = pd.DataFrame({f"f{j}": rng.normal(j, 1.0, n_cur) for j in range(features)})
    for j in range(0, features, 3):
        cur[f"f{j}"] += 0.1 + 0.4 * (j / features)
    return ref, cur


def evidently_report(ref, cur):
    try:
        from evidently.legacy.metric_preset import DataDriftPreset
        from evidently.legacy.report import Report
    except ImportError:  # older Evidently: the legacy engine is the top level
        from evidently.metric_preset import DataDriftPreset
        from evidently.report import Report
    report = Report(metrics=[DataDriftPreset()])
    t0 = time.perf_counter()
    report.run(reference_data=ref, current_data=cur)
    d = report.as_dict()
    elapsed = time.perf_counter() - t0
    table = next(m["result"] for m in d["metrics"] if "drift_by_columns" in m["result"])
    cols = {
        name: {"method": c["stattest_name"], "score": c["drift_score"], "drift": c["drift_detected"]}
        for name, c in table["drift_by_columns"].items()
    }
    return elapsed, cols


METHOD = {"ks": "K-S p_value", "wasserstein": "Wasserstein distance (normed)"}


def vigil_report(vigil, ref, cur, tmp):
    rp, cp = os.path.join(tmp, "ref.csv"), os.path.join(tmp, "cur.csv")
    ref.to_csv(rp, index=False, float_format="%.17g")
    cur.to_csv(cp, index=False, float_format="%.17g")
    cfg = os.path.join(tmp, "vigil.toml")
    with open(cfg, "w") as f:
        f.write("[drift]\ncovariate_shift = false\n")
    t0 = time.perf_counter()
    out = subprocess.run([vigil, "drift", "--reference", rp, "--current", cp, "--config", cfg], capture_output=True)
    elapsed = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        sys.exit(out.stderr.decode())
    r = json.loads(out.stdout)
    cols = {}
    for c in r["features"]:
        score = c["p_value"] if c["method"] == "ks" else c["statistic"]
        cols[c["name"]] = {"method": METHOD.get(c["method"], c["method"]), "score": score, "drift": c["drift"]}
    return elapsed, cols


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--current", type=int, default=10000)
    args = ap.parse_args()
    import evidently

    print(f"evidently {evidently.__version__}, {args.features} numeric features, current {args.current} rows")
    print("| reference rows | default method | vigil drift (s) | Evidently (s) | same method | max abs score difference | same verdict |")
    print("|---|---|---|---|---|---|---|")
    for n_ref in (800, 5000):
        ref, cur = data(n_ref, args.current, args.features)
        with tempfile.TemporaryDirectory() as tmp:
            tv, v = vigil_report(args.vigil, ref, cur, tmp)
        te, e = evidently_report(ref, cur)
        same_method = [k for k in v if v[k]["method"] == e[k]["method"]]
        diff = max(abs(v[k]["score"] - e[k]["score"]) for k in same_method) if same_method else float("nan")
        verdict = sum(v[k]["drift"] == e[k]["drift"] for k in v)
        method = v["f0"]["method"]
        print(f"| {n_ref} | {method} | {tv:.3f} | {te:.3f} | {len(same_method)}/{len(v)} | {diff:.2e} | {verdict}/{len(v)} |")


if __name__ == "__main__":
    main()
