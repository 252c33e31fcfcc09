"""Drift end to end, checked against scipy (tests/e2e_mlserver.rs).

    python drift.py PROXY ADMIN REFERENCE_CSV ROWS

Sends ROWS rows (requests of 10) through vigil (PROXY, host:port) to MLServer with tritonclient,
drawn like the training data (tests/e2e/train.py) but with income multiplied by 1.5 and history
shortened by 10 years; then waits until vigil's drift window (GET http://ADMIN/admin/drift) holds
exactly those ROWS records, and prints one JSON document: for each feature, vigil's report and
scipy.stats.ks_2samp on the same two samples (the reference column and the rows sent).
"""

import json
import sys
import time
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from scipy import stats

FEATURES = ("age", "income", "utilisation", "history_years")


def rows(n):
    rng = np.random.default_rng(23)
    x = np.column_stack(
        [
            rng.uniform(18, 80, n),
            rng.lognormal(10.5, 0.5, n) * 1.5,
            rng.uniform(0, 1, n),
            np.maximum(rng.uniform(0, 40, n) - 10, 0),
        ]
    )
    return x.astype(np.float64)


def main(proxy, admin, reference, n):
    x = rows(n)
    client = httpclient.InferenceServerClient(url=proxy, connection_timeout=10, network_timeout=10)
    for start in range(0, n, 10):
        chunk = x[start : start + 10]
        inp = httpclient.InferInput("input-0", list(chunk.shape), "FP64")
        inp.set_data_from_numpy(chunk, binary_data=False)
        client.infer("credit", [inp], outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)])
    deadline = time.time() + 20
    while True:
        with urllib.request.urlopen(f"http://{admin}/admin/drift") as r:
            drift = json.load(r)
        v1 = drift.get("versions", {}).get("v1")
        if v1 and v1["window"]["records"] == n:
            break
        if time.time() > deadline:
            sys.exit(f"vigil's window never reached {n} records: {json.dumps(drift)}")
        time.sleep(0.1)
    ref = np.genfromtxt(reference, delimiter=",", names=True)
    out = {"features": {}, "predictions": v1["predictions"], "dataset": v1["dataset"]}
    for j, name in enumerate(FEATURES):
        vigil = next(f for f in v1["features"] if f["name"] == name)
        ks = stats.ks_2samp(ref[name], x[:, j])
        out["features"][name] = {
            "vigil": vigil,
            "scipy": {"statistic": float(ks.statistic), "pvalue": float(ks.pvalue)},
        }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1].removeprefix("http://"), sys.argv[2].removeprefix("http://"), sys.argv[3], int(sys.argv[4]))
