"""A real Open Inference Protocol V2 client (tritonclient.http) for the MLServer end-to-end test.

    python client.py URL batch N       # N requests, then one JSON document on stdout
    python client.py URL stream        # requests until stdin closes, one JSON line per request

URL is host:port (or http://host:port). Request i sends input i % len(INPUTS): a FP64 [B,4]
tensor from a fixed seed, so two runs send the same inputs in the same order, and asks for
the outputs "predict" and "predict_proba". Each result is
{"i": i, "model_name": ..., "model_version": ..., "outputs": {name: {"shape": [...],
"datatype": ..., "data": [...]}}}, or {"i": i, "error": "..."} when the call failed (stream
mode keeps going). The batch document is {"results": [...]}.
"""

import json
import sys
import threading

import numpy as np
import tritonclient.http as httpclient

MODEL = "credit"
OUTPUTS = ("predict", "predict_proba")


def inputs():
    rng = np.random.default_rng(11)
    out = []
    for b in (1, 3, 8, 2, 5, 16, 4, 1):
        x = np.column_stack(
            [
                rng.uniform(18, 80, b),
                rng.lognormal(10.5, 0.5, b),
                rng.uniform(0, 1, b),
                rng.uniform(0, 40, b),
            ]
        ).astype(np.float64)
        out.append(x)
    return out


INPUTS = inputs()


def call(client, i):
    x = INPUTS[i % len(INPUTS)]
    inp = httpclient.InferInput("input-0", list(x.shape), "FP64")
    # MLServer 1.7 rejects tritonclient's default binary tensor data in requests (422): JSON in and out.
    inp.set_data_from_numpy(x, binary_data=False)
    outs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in OUTPUTS]
    try:
        r = client.infer(MODEL, [inp], outputs=outs)
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        return {"i": i, "error": f"{type(e).__name__}: {e}"}
    resp = r.get_response()
    result = {"i": i, "model_name": resp.get("model_name"), "model_version": resp.get("model_version"), "outputs": {}}
    for o in resp["outputs"]:
        arr = r.as_numpy(o["name"])
        result["outputs"][o["name"]] = {"shape": list(arr.shape), "datatype": o["datatype"], "data": arr.ravel().tolist()}
    return result


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("batch", "stream"):
        sys.exit(__doc__)
    url = sys.argv[1].removeprefix("http://")
    client = httpclient.InferenceServerClient(url=url, connection_timeout=10, network_timeout=10)
    if sys.argv[2] == "batch":
        n = int(sys.argv[3])
        results = [call(client, i) for i in range(n)]
        json.dump({"results": results}, sys.stdout)
        sys.stdout.write("\n")
        return
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    i = 0
    while not stop.is_set():
        sys.stdout.write(json.dumps(call(client, i)) + "\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
