"""Ground truth end to end, checked against scikit-learn (tests/e2e_mlserver.rs).

    python performance.py PROXY ADMIN ROWS

Sends ROWS fresh rows (requests of 10, drawn like the training data of tests/e2e/train.py with
another seed) through vigil (PROXY, host:port) to MLServer with tritonclient, asking for both
outputs, `predict` and `predict_proba`, each request with its own x-request-id. Once vigil has
logged them (vigil_prediction_log_rows_total), posts the
rows' true labels to vigil's POST http://ADMIN/feedback (one {"request_id", "labels": [...]} per
request, all in one array), waits until GET /admin/performance counts ROWS labelled records for
v1, and prints one JSON document: vigil's report for the count window, the feedback answer, and
scikit-learn's metrics on the same labels, classes and probabilities the client received.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from sklearn import metrics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import data  # noqa: E402  (the same generator as the training data)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def main(proxy, admin, n):
    x, y = data(seed=29, n=n)
    client = httpclient.InferenceServerClient(url=proxy, connection_timeout=10, network_timeout=10)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=False),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    pred, proba, feedback = [], [], []
    for start in range(0, n, 10):
        chunk = x[start : start + 10]
        inp = httpclient.InferInput("input-0", list(chunk.shape), "FP64")
        inp.set_data_from_numpy(chunk, binary_data=False)
        rid = f"perf-{start}"
        res = client.infer("credit", [inp], outputs=outputs, headers={"x-request-id": rid})
        pred.extend(int(v) for v in res.as_numpy("predict").reshape(-1))
        proba.extend(float(v) for v in res.as_numpy("predict_proba")[:, 1])
        feedback.append({"request_id": rid, "labels": [int(v) for v in y[start : start + 10]]})
    # Predictions are logged off the request path, a few ms after the answer; a label posted before
    # its prediction is in the log comes back "unknown". Wait until all n rows are written.
    deadline = time.time() + 30
    while True:
        with urllib.request.urlopen(f"http://{admin}/metrics") as r:
            text = r.read().decode()
        written = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("vigil_prediction_log_rows_total"))
        if written >= n:
            break
        if time.time() > deadline:
            sys.exit(f"vigil logged only {written} of {n} rows")
        time.sleep(0.05)
    answer = post(f"http://{admin}/feedback", feedback)
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{admin}/admin/performance?version=v1") as r:
                perf = json.load(r)
        except urllib.error.HTTPError as e:
            # 404 until the first evaluation after v1's first record.
            perf = {"status": e.code, "body": e.read().decode(errors="replace")}
        window = perf.get("versions", {}).get("v1", {}).get(str(n))
        if window and window["labelled"] == n:
            break
        if time.time() > deadline:
            sys.exit(f"vigil never counted {n} labelled records: {json.dumps(perf)}")
        time.sleep(0.1)
    y_pred, p = np.array(pred), np.array(proba)
    sk = {
        "accuracy": metrics.accuracy_score(y, y_pred),
        "precision": metrics.precision_score(y, y_pred, zero_division=0),
        "recall": metrics.recall_score(y, y_pred, zero_division=0),
        "f1": metrics.f1_score(y, y_pred, zero_division=0),
        "macro_f1": metrics.f1_score(y, y_pred, average="macro", zero_division=0),
        "weighted_f1": metrics.f1_score(y, y_pred, average="weighted", zero_division=0),
        "confusion_matrix": metrics.confusion_matrix(y, y_pred).tolist(),
        "roc_auc": metrics.roc_auc_score(y, p),
        "pr_auc": metrics.average_precision_score(y, p),
        "log_loss": metrics.log_loss(y, p),
        "brier": metrics.brier_score_loss(y, p),
    }
    json.dump({"vigil": window, "feedback": answer, "sklearn": {k: v if isinstance(v, list) else float(v) for k, v in sk.items()}}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1].removeprefix("http://"), sys.argv[2].removeprefix("http://"), int(sys.argv[3]))
