"""Trains the two model versions the MLServer end-to-end test serves (tests/e2e_mlserver.rs).

    python train.py OUT_DIR

writes, for each version V in v1 and v2, an MLServer model repository OUT_DIR/V/credit/ holding
model.joblib and model-settings.json, OUT_DIR/reference.csv (500 training rows with v1's
prediction, the drift reference) and OUT_DIR/reference_labelled.csv (the same rows with v1's
probability of class 1 and the true label, for the performance test) (implementation
mlserver_sklearn.SKLearnModel, name
"credit", version V). Both versions are logistic regressions on the same fixed synthetic
credit-style data set (4 numeric features, numpy seed 7) and differ in regularisation and in
the features they see, so they disagree on a good share of inputs. Deterministic: the same
script and library versions give the same models.
"""

import json
import os
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

NAME = "credit"


def data(seed=7, n=2000):
    """Features and labels; seed 7 is the training set, other seeds draw fresh rows alike."""
    rng = np.random.default_rng(seed)
    # age, income, utilisation, years of history: the same shapes as vigil's demo traffic.
    x = np.column_stack(
        [
            rng.uniform(18, 80, n),
            rng.lognormal(10.5, 0.5, n),
            rng.uniform(0, 1, n),
            rng.uniform(0, 40, n),
        ]
    )
    logit = -0.03 * (x[:, 0] - 45) - 1.2e-5 * (x[:, 1] - 40000) + 3.0 * (x[:, 2] - 0.5) - 0.05 * (x[:, 3] - 10)
    y = (logit + rng.normal(0, 0.5, n) > 0).astype(int)
    return x, y


FEATURES = ("age", "income", "utilisation", "history_years")


def write_reference(out, x, model, rows=500):
    """The drift reference: the first `rows` training rows, named, with v1's prediction."""
    path = os.path.join(out, "reference.csv")
    pred = model.predict(x[:rows])
    with open(path, "w") as f:
        f.write(",".join(FEATURES) + ",predict\n")
        for row, p in zip(x[:rows], pred):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(p)}\n")
    print(f"reference: {path}", file=sys.stderr)


def write_labelled_reference(out, x, y, model, rows=500):
    """The performance reference: features, v1's class and probability of class 1, the truth."""
    path = os.path.join(out, "reference_labelled.csv")
    pred = model.predict(x[:rows])
    proba = model.predict_proba(x[:rows])[:, 1]
    with open(path, "w") as f:
        f.write(",".join(FEATURES) + ",predict,predict_proba[1],target\n")
        for row, p, q, t in zip(x[:rows], pred, proba, y[:rows]):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(p)},{float(q)!r},{int(t)}\n")


def main(out):
    x, y = data()
    # v1: all four features, default regularisation. v2: strong regularisation, and the
    # utilisation feature zeroed out, so it answers differently on many inputs.
    v1 = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(x, y)
    x2 = x.copy()
    x2[:, 2] = 0.0
    v2 = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(x2, y)
    write_reference(out, x, v1)
    write_labelled_reference(out, x, y, v1)
    for version, model in (("v1", v1), ("v2", v2)):
        d = os.path.join(out, version, NAME)
        os.makedirs(d, exist_ok=True)
        joblib.dump(model, os.path.join(d, "model.joblib"))
        settings = {
            "name": NAME,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": version},
        }
        with open(os.path.join(d, "model-settings.json"), "w") as f:
            json.dump(settings, f, indent=2)
        print(f"{version}: {d}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: train.py OUT_DIR")
    main(sys.argv[1])
