#!/usr/bin/env bash
# Feedback under load: POST /feedback at a constant label rate while the proxy serves live
# traffic, against the same traffic without feedback, and the upstream directly.
#
# Upstream: vigil's built-in demo model (V2, 4 features, outputs probability and label).
# vigil runs with a reference, the prediction log and the performance monitors on, 1 worker
# thread. Live traffic: vigil-loadtest at RATE requests/s of BATCH rows (x-request-id fb-<n>).
# Feedback: a Python poster (stdlib only) labels those requests from the oldest on, every row,
# in POSTs of POST_ROWS labels, paced to LABELS labels/s, one second behind the traffic so that
# labels join; it reports the achieved label rate, joined and unknown counts, and POST latency.
#
# Measured per round, in this order: direct (loadtest to the demo model), vigil without
# feedback, vigil with feedback. Rounds repeat; the table gives each measurement.
#
# Installs nothing. Needs: cargo, python3.
#
# Usage: loadtest/bench/feedback.sh [--rate 2000] [--batch 5] [--labels 10000] [--duration 30]
#                                   [--rounds 2] [--out FILE] [--no-build]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

RATE=2000
BATCH=5
LABELS=10000
POST_ROWS=500
DURATION=30
ROUNDS=2
OUT=""
NO_BUILD=0
cmdline="loadtest/bench/feedback.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --labels) LABELS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || OUT="loadtest/bench/feedback-$(date +%Y%m%d-%H%M%S).md"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [ "$NO_BUILD" = 0 ]; then
    log "building release binaries"
    cargo build --release -q -p vigil -p vigil-loadtest
fi
VIGIL="$repo/target/release/vigil"
LOADTEST="$repo/target/release/loadtest"

dir="$(mktemp -d /tmp/vigil-feedback.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "no answer from $1" >&2
    exit 1
}

model_port="$(port)"
"$VIGIL" demo-model --listen "127.0.0.1:$model_port" --model-version v1 >"$dir/model.log" 2>&1 &
pids+=($!)

# A reference for the schema (values near the demo distribution; only its columns matter here).
python3 - "$dir/reference.csv" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("age,income,debt_ratio,tenure_months,probability,label\n")
    for _ in range(2000):
        p = random.random()
        f.write(f"{random.gauss(40, 12)},{random.gauss(55000, 15000)},{random.gauss(0.5, 0.167)},"
                f"{random.gauss(36, 20)},{p},{int(p >= 0.5)}\n")
PY

cat >"$dir/vigil.toml" <<EOF
[runtime]
worker_threads = 1
[log]
level = "warn"
[schema]
predictions = ["probability", "label"]
[performance]
probability = "probability"
prediction = "label"
windows = ["10000", "1h"]
[[versions]]
name = "v1"
url = "http://127.0.0.1:$model_port"
EOF

proxy_port="$(port)"
admin_port="$(port)"
"$VIGIL" run -c "$dir/vigil.toml" --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" \
    --state-dir "$dir/state" --reference "$dir/reference.csv" >"$dir/vigil.log" 2>&1 &
pids+=($!)
vigil_pid=$!
wait_http "http://127.0.0.1:$model_port/v2/health/ready"
wait_http "http://127.0.0.1:$admin_port/readyz"

cat >"$dir/poster.py" <<'PY'
"""Posts labels for fb-<n> requests at a constant label rate; prints one JSON line."""
import json, sys, threading, time, urllib.request

admin, rate, batch, post_rows, duration, traffic_rate, offset = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
per_post = max(1, post_rows // batch)               # requests per POST
posts_per_s = rate / (per_post * batch)
start = time.monotonic()
lock = threading.Lock()
stats = {"posts": 0, "labels": 0, "joined": 0, "unknown": 0, "latencies_ms": [], "first": None}
cursor = [offset]

def one(ids):
    body = json.dumps([{"request_id": f"fb-{n}", "labels": [n % 2] * batch} for n in ids]).encode()
    req = urllib.request.Request(f"http://{admin}/feedback", data=body, headers={"content-type": "application/json"})
    t = time.monotonic()
    with urllib.request.urlopen(req) as r:
        a = json.load(r)
    ms = (time.monotonic() - t) * 1000
    with lock:
        stats["posts"] += 1
        stats["labels"] += a["received"]
        stats["joined"] += a["joined"]
        stats["unknown"] += a["unknown"]
        stats["latencies_ms"].append(ms)

threads = []
k = 0
while True:
    due = start + k / posts_per_s
    now = time.monotonic()
    if due - start >= duration:
        break
    if due > now:
        time.sleep(due - now)
    # Requests sent at least a second ago (the traffic started with us).
    sent = int((time.monotonic() - start - 1.0) * traffic_rate) + offset
    ids = range(cursor[0], cursor[0] + per_post)
    if ids.stop <= sent:
        if stats["first"] is None:
            stats["first"] = time.monotonic()
        cursor[0] = ids.stop
        th = threading.Thread(target=one, args=(ids,))
        th.start()
        threads.append(th)
    k += 1
for th in threads:
    th.join()
# The rate over the posting period (labels start once requests a second old exist).
elapsed = time.monotonic() - (stats["first"] or start)
lat = sorted(stats["latencies_ms"]) or [float("nan")]
print(json.dumps({
    "label_rate": stats["labels"] / elapsed, "labels": stats["labels"], "joined": stats["joined"],
    "unknown": stats["unknown"], "posts": stats["posts"],
    "post_ms_p50": lat[len(lat) // 2], "post_ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
}))
PY

cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }

rows=()
run() {  # run NAME TARGET_URL FEEDBACK(0|1)
    local name="$1" url="$2" fb="$3" before after lt fbout=""
    before="$(cpu_ms "$vigil_pid")"
    if [ "$fb" = 1 ]; then
        python3 "$dir/poster.py" "127.0.0.1:$admin_port" "$LABELS" "$BATCH" "$POST_ROWS" "$DURATION" "$RATE" 0 \
            >"$dir/poster.json" &
        local poster=$!
    fi
    lt="$("$LOADTEST" --target "$url" --rate "$RATE" --duration "${DURATION}s" --batch "$BATCH" \
        --request-id-prefix "fb-" --seed 7 --json 2>/dev/null)"
    if [ "$fb" = 1 ]; then wait "$poster"; fbout="$(cat "$dir/poster.json")"; fi
    after="$(cpu_ms "$vigil_pid")"
    rows+=("$(python3 - "$name" "$lt" "$fbout" "$before" "$after" <<'PY'
import json, sys
name, lt, fb, before, after = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
lat = lt["latency_us"]
fbj = json.loads(fb) if fb else None
errors = sum(lt["errors"].values()) + sum(lt["non_2xx"].values())
print("|".join(str(x) for x in [
    name, f"{lt['achieved_rate']:.0f}", lat["p50"], lat["p99"], lat["p99_9"], errors,
    "-" if name == "direct" else f"{after - before:.0f}",
    f"{fbj['label_rate']:.0f}" if fbj else "-",
    f"{fbj['joined']}/{fbj['labels']}" if fbj else "-",
    f"{fbj['post_ms_p50']:.1f} / {fbj['post_ms_p99']:.1f}" if fbj else "-",
]))
PY
)")
    log "  ${rows[-1]}"
}

log "$ROUNDS round(s) of direct, vigil, vigil + feedback: ${RATE} req/s x ${BATCH} rows, ${LABELS} labels/s, ${DURATION}s each"
for r in $(seq 1 "$ROUNDS"); do
    log "round $r"
    run "direct" "http://127.0.0.1:$model_port" 0
    run "vigil" "http://127.0.0.1:$proxy_port" 0
    run "vigil + feedback" "http://127.0.0.1:$proxy_port" 1
done
# The prediction log after the runs, as the shell sees it.
labelled="$(curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk '/^vigil_feedback_total/ {s[$1]=$2} END {for (k in s) print k, s[k]}' | sort | tr '\n' ';')"

{
    echo "### Feedback under load, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Command: \`$cmdline\`"
    echo
    echo "- machine: $(nproc) CPUs, $(uname -r); vigil $(git rev-parse --short HEAD), 1 worker thread"
    echo "- traffic: vigil-loadtest, ${RATE} req/s of ${BATCH} rows (V2), ${DURATION}s per measurement; upstream: the demo model"
    echo "- feedback: ${LABELS} labels/s asked, POSTs of ${POST_ROWS} labels, labelling requests sent at least 1 s before"
    echo "- CPU: utime+stime of the vigil process over the measurement, ms"
    echo "- vigil's counters at the end: ${labelled}"
    echo
    echo "| run | achieved req/s | p50 µs | p99 µs | p99.9 µs | errors | vigil CPU ms | labels/s | joined / sent | POST p50 / p99 ms |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for row in "${rows[@]}"; do echo "| ${row//|/ | } |"; done
} >"$OUT"
log "results written to $OUT"
cat "$OUT"
