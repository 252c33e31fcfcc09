#!/usr/bin/env bash
# Proxy overhead and load: direct-to-upstream vs through vigil vs through nginx proxy_pass and
# haproxy, at fixed rates (steady), in rising steps until a target no longer holds the rate (ramp),
# and with a burst on top of a baseline (spike).
#
# One fast upstream (a static nginx answering 200 with a fixed body per payload), then for each
# target and each rate: oha at a constant rate with 32 connections, a warmup first, latency
# percentiles from oha's JSON, the proxy's CPU time (utime+stime of every process of the proxy,
# from /proc/PID/stat) before and after, as CPU ms per 1,000 requests, and the proxy's peak RSS
# during the measured window (VmHWM of its processes, reset before the window).
# Targets are interleaved within a round, and rounds repeat (order reversed every other round)
# so that noise shows as a spread rather than as a bias.
#
# Installs nothing. Needs: nginx (apt-get install -y nginx), oha (cargo install oha --locked),
# python3, curl, cargo; haproxy (apt-get install -y haproxy) for the haproxy target. Optional:
# taskset (util-linux) to pin the upstream.
#
# Usage: loadtest/bench/proxy-overhead.sh [options]
#   --scenario steady     one or more of steady ramp spike, run in that order (env SCENARIOS)
#                         steady: each of --rates, --duration each
#                         ramp:   --ramp-start, +--ramp-step, ... up to --ramp-max req/s, all
#                                 targets at each step, --ramp-duration each; a target leaves the
#                                 ramp at the first step it does not hold (achieved < --ramp-hold
#                                 of offered, any non-2xx or error, or p99 > --ramp-p99-ms)
#                         spike:  --spike-base req/s for --spike-duration, and a second oha adding
#                                 --spike-extra req/s for --spike-seconds in the middle
#   --rows kib            payloads, one or more of: kib (one FP32 row padded to a 1,024-byte
#                         JSON, answered with a 1,024-byte JSON: the body of every result before
#                         the load scenarios) or N (a V2 request of N rows x 8 FP64 features drawn
#                         once, seed N, from the drift reference's distribution, at
#                         /v2/models/rowsN/infer, answered with a valid V2 response of N
#                         predictions; N up to about 450)                      (env ROWS)
#   --ramp-rows ROWS      payloads of the ramp (default: --rows)                (env RAMP_ROWS)
#   --spike-rows ROWS     payloads of the spike (default: the first of --rows) (env SPIKE_ROWS)
#   --rates "1000 5000"   steady: constant request rates, req/s  (env RATES)
#   --duration 20         steady: seconds measured per target and rate (env DURATION)
#   --warmup 5            seconds of unmeasured load before each steady and spike measurement, at
#                         its (base) rate                        (env WARMUP)
#   --ramp-start 2000     ramp: first step, req/s                (env RAMP_START)
#   --ramp-step 2000      ramp: increment, req/s                 (env RAMP_STEP)
#   --ramp-max 40000      ramp: last step, req/s                 (env RAMP_MAX)
#   --ramp-duration 10    ramp: seconds measured per step        (env RAMP_DURATION)
#   --ramp-warmup 2       ramp: seconds of warmup per step       (env RAMP_WARMUP)
#   --ramp-hold 0.97      ramp: achieved / offered below which the step is not held (env RAMP_HOLD)
#   --ramp-p99-ms 20      ramp: p99 above which the step is not held (env RAMP_P99_MS)
#   --spike-base 1000     spike: baseline rate for the whole window (env SPIKE_BASE)
#   --spike-extra 4000    spike: rate the second oha adds        (env SPIKE_EXTRA)
#   --spike-seconds 5     spike: how long it adds it, centred in the window (env SPIKE_SECONDS)
#   --spike-duration 30   spike: seconds measured                (env SPIKE_DURATION)
#   --rounds 2            repetitions of the whole matrix         (env ROUNDS)
#   --connections 32      oha connections (each oha of a spike has its own) (env CONNECTIONS)
#   --targets "..."       subset of: direct nginx haproxy vigil-w1 vigil-w2 vigil-notap-w1
#                         vigil-notap-w2 vigil-drift-w1 vigil-drift-w2 vigil-log-w1 vigil-log-w2
#                         vigil-shadow-w1 vigil-shadow-w2 vigil-mirror-w1 vigil-mirror-w2
#                         (env TARGETS; direct is always added: the added latency is vs direct)
#   --upstream-cpu 1      CPU list the upstream nginx is pinned to with taskset; "" = unpinned
#                         (env UPSTREAM_CPU)
#   --out FILE            results file (default loadtest/bench/results-YYYYMMDD-HHMMSS.md)
#   --no-build            use target/release/vigil as it is (env NO_BUILD=1)
#   --vigil-bin PATH      use this vigil binary (copied) instead of building (env VIGIL_BIN)
#   env OTHER_MAX=0.15    cores of load not ours above which the box counts as busy: before each
#                         measurement the script waits (QUIET_WAIT=600 s at most) for a quiet box,
#                         and a measurement that saw more is repeated (RETRIES=2 times at most)
#   env BENCH_COMMAND     the command line written into the report (default: this one)
#   --keep                keep the temp dir (configs, logs, oha JSON) for inspection
#   --profile TARGET      instead of the matrix: load TARGET (e.g. vigil-w1) at the last rate,
#                         once under `perf stat` (syscalls and context switches per request) and
#                         once under `perf record --call-graph dwarf`, and write the hot spots in
#                         µs of CPU per request to loadtest/bench/profile-*.txt
#
# vigil variants: vigil-wN runs with [runtime] worker_threads = N and the capture tap on (the
# default); vigil-notap-wN the same with [capture] enabled = false; vigil-drift-wN the same with a
# drift reference, so every exchange is also decoded and fed to the drift monitors (prediction
# log off); vigil-log-wN the same with the prediction log on (every row written to SQLite);
# vigil-shadow-wN everything on: drift, the prediction log, 100% of requests mirrored to a
# candidate and the what-if kinds at their default budgets. Only vigil-shadow-wN sends shadow
# traffic ([shadow] enabled = false elsewhere); vigil-mirror-wN is vigil-drift-wN plus the same
# shadow traffic (prediction log off), to see shadow's cost apart from the log's.
# haproxy: Debian's haproxy as the nginx target's equivalent (mode http, nbthread 1,
# http-reuse always, no logging).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

RATES="${RATES:-1000 5000}"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
ROUNDS="${ROUNDS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
TARGETS="${TARGETS:-direct nginx vigil-w1 vigil-w2 vigil-notap-w1 vigil-notap-w2}"
UPSTREAM_CPU="${UPSTREAM_CPU-1}"
OUT="${OUT:-}"
NO_BUILD="${NO_BUILD:-0}"
VIGIL_BIN="${VIGIL_BIN:-}"
SCENARIOS="${SCENARIOS:-steady}"
ROWS="${ROWS:-kib}"
RAMP_ROWS="${RAMP_ROWS:-}"
SPIKE_ROWS="${SPIKE_ROWS:-}"
RAMP_START="${RAMP_START:-2000}"
RAMP_STEP="${RAMP_STEP:-2000}"
RAMP_MAX="${RAMP_MAX:-40000}"
RAMP_DURATION="${RAMP_DURATION:-10}"
RAMP_WARMUP="${RAMP_WARMUP:-2}"
RAMP_HOLD="${RAMP_HOLD:-0.97}"
RAMP_P99_MS="${RAMP_P99_MS:-20}"
SPIKE_BASE="${SPIKE_BASE:-1000}"
SPIKE_EXTRA="${SPIKE_EXTRA:-4000}"
SPIKE_SECONDS="${SPIKE_SECONDS:-5}"
SPIKE_DURATION="${SPIKE_DURATION:-30}"
PROFILE=""
KEEP=0
BODY_BYTES=1024
# The command as typed (arguments with spaces quoted), for the report.
cmdline="loadtest/bench/proxy-overhead.sh"
for arg in "$@"; do
    case "$arg" in *" "*|"") cmdline+=" \"$arg\"" ;; *) cmdline+=" $arg" ;; esac
done
cmdline="${BENCH_COMMAND:-$cmdline}"

while [ $# -gt 0 ]; do
    case "$1" in
        --scenario) SCENARIOS="$2"; shift 2 ;;
        --rows) ROWS="$2"; shift 2 ;;
        --ramp-rows) RAMP_ROWS="$2"; shift 2 ;;
        --spike-rows) SPIKE_ROWS="$2"; shift 2 ;;
        --rates) RATES="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --ramp-start) RAMP_START="$2"; shift 2 ;;
        --ramp-step) RAMP_STEP="$2"; shift 2 ;;
        --ramp-max) RAMP_MAX="$2"; shift 2 ;;
        --ramp-duration) RAMP_DURATION="$2"; shift 2 ;;
        --ramp-warmup) RAMP_WARMUP="$2"; shift 2 ;;
        --ramp-hold) RAMP_HOLD="$2"; shift 2 ;;
        --ramp-p99-ms) RAMP_P99_MS="$2"; shift 2 ;;
        --spike-base) SPIKE_BASE="$2"; shift 2 ;;
        --spike-extra) SPIKE_EXTRA="$2"; shift 2 ;;
        --spike-seconds) SPIKE_SECONDS="$2"; shift 2 ;;
        --spike-duration) SPIKE_DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --targets) TARGETS="$2"; shift 2 ;;
        --upstream-cpu) UPSTREAM_CPU="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        --vigil-bin) VIGIL_BIN="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --profile) PROFILE="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || OUT="loadtest/bench/results-$(date +%Y%m%d-%H%M%S).md"
[ -n "$RAMP_ROWS" ] || RAMP_ROWS="$ROWS"
[ -n "$SPIKE_ROWS" ] || SPIKE_ROWS="${ROWS%% *}"
if [ -n "$PROFILE" ]; then
    TARGETS="$PROFILE"
    SCENARIOS=steady
    command -v perf >/dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 1; }
fi
case " $TARGETS " in *" direct "*) ;; *) TARGETS="direct $TARGETS" ;; esac
for t in $TARGETS; do
    case "$t" in
        direct|nginx|haproxy|vigil-w[0-9]*|vigil-notap-w[0-9]*|vigil-drift-w[0-9]*|vigil-log-w[0-9]*|vigil-shadow-w[0-9]*|vigil-mirror-w[0-9]*) ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
    esac
done
has() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; } # list word
for sc in $SCENARIOS; do
    case "$sc" in steady|ramp|spike) ;; *) echo "unknown scenario: $sc (steady, ramp or spike)" >&2; exit 2 ;; esac
done
# Every payload the chosen scenarios use, each once; kib is always served (location /).
all_rows="kib"
for sc in $SCENARIOS; do
    case "$sc" in steady) list="$ROWS" ;; ramp) list="$RAMP_ROWS" ;; spike) list="$SPIKE_ROWS" ;; esac
    for r in $list; do
        [[ "$r" == kib || "$r" =~ ^[1-9][0-9]*$ ]] || { echo "--rows: \`$r\` is neither kib nor a row count (1, 32, 256, ...)" >&2; exit 2; }
        has "$all_rows" "$r" || all_rows+=" $r"
    done
done
for v in DURATION WARMUP ROUNDS CONNECTIONS RAMP_START RAMP_STEP RAMP_MAX RAMP_DURATION RAMP_WARMUP \
    SPIKE_BASE SPIKE_EXTRA SPIKE_SECONDS SPIKE_DURATION; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v = \`${!v}\`: expected a whole number" >&2; exit 2; }
done
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || { echo "--rates: \`$r\` is not a whole number of req/s" >&2; exit 2; }; done
[ "$RAMP_STEP" -gt 0 ] || { echo "--ramp-step must be above 0" >&2; exit 2; }
if has "$SCENARIOS" spike && [ "$SPIKE_SECONDS" -ge "$SPIKE_DURATION" ]; then
    echo "--spike-seconds ($SPIKE_SECONDS) must be shorter than --spike-duration ($SPIKE_DURATION)" >&2; exit 2
fi
SPIKE_AT=$(((SPIKE_DURATION - SPIKE_SECONDS) / 2))

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- preflight: say what is missing and how to get it; install nothing ----------------------
missing=0
NGINX="$(command -v nginx || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
if [ -z "$NGINX" ]; then
    echo "nginx not found. Install Debian's: apt-get install -y nginx" >&2; missing=1
fi
OHA="$(command -v oha || true)"
[ -n "$OHA" ] || { [ -x "$HOME/.cargo/bin/oha" ] && OHA="$HOME/.cargo/bin/oha"; }
if [ -z "$OHA" ]; then
    echo "oha not found. Install it: cargo install oha --locked" >&2; missing=1
fi
HAPROXY=""
if has "$TARGETS" haproxy; then
    HAPROXY="$(command -v haproxy || true)"
    [ -n "$HAPROXY" ] || { [ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy; }
    if [ -z "$HAPROXY" ]; then
        echo "haproxy not found (the haproxy target). Install Debian's: apt-get install -y haproxy" >&2; missing=1
    fi
fi
tools="python3 curl"
[ -n "$VIGIL_BIN" ] || [ "$NO_BUILD" = 1 ] || tools+=" cargo"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; missing=1; }
done
if [ -n "$VIGIL_BIN" ] && [ ! -x "$VIGIL_BIN" ]; then
    echo "--vigil-bin $VIGIL_BIN: not an executable file" >&2; missing=1
fi
[ "$missing" = 0 ] || exit 1
if [ -n "$UPSTREAM_CPU" ] && ! command -v taskset >/dev/null; then
    log "taskset not found (apt-get install -y util-linux): the upstream runs unpinned"
    UPSTREAM_CPU=""
fi
if [ -n "$UPSTREAM_CPU" ] && ! taskset -c "$UPSTREAM_CPU" true 2>/dev/null; then
    log "cannot pin to CPU $UPSTREAM_CPU: the upstream runs unpinned"
    UPSTREAM_CPU=""
fi

# oha's flags changed across versions: find the JSON switch and the latency-correction switch.
oha_help="$("$OHA" --help 2>&1)"
if grep -q -- '--output-format' <<<"$oha_help"; then
    OHA_JSON=(--output-format json)
elif grep -q -- '--json' <<<"$oha_help"; then
    OHA_JSON=(-j)
else
    echo "this oha ($("$OHA" --version)) has no JSON output; cargo install oha --locked --force" >&2
    exit 1
fi
OHA_LATCORR=()
LATCORR_NOTE="unknown"
if grep -q -- '--disable-latency-correction' <<<"$oha_help"; then
    LATCORR_NOTE="on (oha's default; --disable-latency-correction not passed)"
elif grep -q -- '--latency-correction' <<<"$oha_help"; then
    OHA_LATCORR=(--latency-correction)
    LATCORR_NOTE="on (--latency-correction)"
else
    LATCORR_NOTE="not available in this oha: latencies are not corrected for coordinated omission"
fi
OHA_TUI=()
grep -q -- '--no-tui' <<<"$oha_help" && OHA_TUI=(--no-tui)
# At the deadline, let in-flight requests finish rather than count them as errors.
grep -q -- '--wait-ongoing-requests-after-deadline' <<<"$oha_help" && OHA_TUI+=(-w)
OHA_BODYFILE=(-D)
grep -qE -- '(^|[ ,])-D[ ,]' <<<"$oha_help" || { echo "this oha has no -D (body from file)" >&2; exit 1; }

# ---- build vigil, and copy the binary so that a rebuild during the run changes nothing -------
tmp="$(mktemp -d /tmp/vigil-bench.XXXXXX)"
pids=()
cleanup() {
    local rc=$?
    set +e
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$KEEP" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$VIGIL_BIN" ]; then
    cp "$VIGIL_BIN" "$tmp/vigil"
    vigil_rev="the binary $VIGIL_BIN ($(date -u -r "$VIGIL_BIN" +%Y-%m-%dT%H:%MZ)), not built from this tree"
else
    if [ "$NO_BUILD" != 1 ]; then
        log "building vigil (cargo build --release -p vigil)"
        cargo build --release -p vigil >&2
    fi
    cp target/release/vigil "$tmp/vigil"
    vigil_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        vigil_rev="$vigil_rev + uncommitted changes in src/"
    fi
    vigil_rev+=" (cargo build --release -p vigil)"
fi
VIGIL="$tmp/vigil"

# ---- bodies -----------------------------------------------------------------------------------
# Per payload ($all_rows): $tmp/req-ROWS.json (what oha posts) and $tmp/resp-ROWS.json (what the
# upstream answers, verbatim in nginx's `return`: no ' $ \ inside, and under nginx's 4,096-byte
# limit for one config token).
#   kib: a V2-shaped JSON of exactly $BODY_BYTES bytes, one FP32 row padded with a string field,
#        answered with a V2-shaped JSON of the same size (the body of every result before the
#        load scenarios: keeps them reproducible).
#   N:   a V2 request of N rows x 8 FP64 features (x0..x7, the drift reference's columns, drawn
#        from the same distribution, seed N), answered with N FP64 predictions (output y, seed N):
#        vigil with drift, the log and mirroring on decodes, profiles, logs and mirrors N rows.
make_bodies() { # rows dir
    python3 - "$1" "$BODY_BYTES" "$2" <<'EOF'
import json, random, sys
tok, size, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def dump(doc):
    return json.dumps(doc, separators=(",", ":"))


if tok == "kib":
    req = {"id": "bench", "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32",
           "data": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}], "pad": ""}
    resp = {"model_name": "bench", "id": "bench", "outputs": [{"name": "y", "shape": [1, 1],
            "datatype": "FP32", "data": [0.5]}], "pad": ""}
    for doc in (req, resp):
        doc["pad"] = "x" * (size - len(dump(doc)))
        assert len(dump(doc)) == size, len(dump(doc))
else:
    n = int(tok)
    rng = random.Random(n)
    data = [round(rng.gauss(0.1 * (j + 1), 0.1), 6) for _ in range(n) for j in range(8)]
    req = {"id": "bench", "inputs": [{"name": "x", "shape": [n, 8], "datatype": "FP64", "data": data}]}
    resp = {"model_name": f"rows{n}", "id": "bench", "outputs": [{"name": "y", "shape": [n, 1],
            "datatype": "FP64", "data": [round(rng.random(), 4) for _ in range(n)]}]}
    if len(dump(resp)) >= 4096:
        sys.exit(f"--rows {n}: the upstream's answer would be {len(dump(resp))} bytes, and nginx's "
                 "`return` takes at most 4,095 in one config token: use at most about 450 rows")
with open(f"{d}/req-{tok}.json", "w") as f:
    f.write(dump(req))
with open(f"{d}/resp-{tok}.json", "w") as f:
    f.write(dump(resp))
EOF
}
path_of() { # rows -> the request path
    if [ "$1" = kib ]; then echo /v2/models/bench/infer; else echo "/v2/models/rows$1/infer"; fi
}
for r in $all_rows; do make_bodies "$r" "$tmp"; done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

post() { # rows base-url [curl options...] -> the response body on stdout
    local rows="$1" base="$2"
    shift 2
    curl -s -X POST -H 'content-type: application/json' --data-binary @"$tmp/req-$rows.json" "$@" \
        "$base$(path_of "$rows")"
}
wait_ready() { # name base-url: 200 for every payload's path
    local r code
    for _ in $(seq 100); do
        code="$(post kib "$2" -o /dev/null -w '%{http_code}' || true)"
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    for r in $all_rows; do
        code="$(post "$r" "$2" -o /dev/null -w '%{http_code}' || true)"
        [ "$code" = 200 ] && continue
        echo "$1 did not answer 200 at $2$(path_of "$r"); logs in $tmp (rerun with --keep)" >&2
        KEEP=1
        exit 1
    done
}

nginx_common() { # dir
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() { # dir
    cat <<EOF
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

declare -A PORT MAINPID ADMIN
start_nginx() { # name dir conf [taskset-cpus]
    local name="$1" dir="$2" cpus="${4:-}"
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$NGINX" -e "$dir/error.log" -p "$dir" -c "$3" >"$dir/stdout.log" 2>&1 &
    else
        "$NGINX" -e "$dir/error.log" -p "$dir" -c "$3" >"$dir/stdout.log" 2>&1 &
    fi
    pids+=($!)
    MAINPID[$name]=$!
}

# ---- the upstream: static nginx, 1 worker, a fixed answer per payload, keep-alive -------------
# (and, for the targets that mirror, the candidate: a second such nginx, a model server of its
# own as a candidate version would be, pinned to the same CPU)
payload_locations() { # one exact location per row count; kib is location /
    local r
    for r in $all_rows; do
        [ "$r" = kib ] && continue
        cat <<EOF
        location = $(path_of "$r") {
            default_type application/json;
            return 200 '$(cat "$tmp/resp-$r.json")';
        }
EOF
    done
}
upstream_conf() { # dir port
    local d="$1" p="$2"
    mkdir -p "$d"
    {
        nginx_common "$d"
        cat <<EOF
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
$(nginx_temp_paths "$d")
    server {
        listen 127.0.0.1:$p backlog=4096;
$(payload_locations)
        location / {
            default_type application/json;
            return 200 '$(cat "$tmp/resp-kib.json")';
        }
    }
}
EOF
    } >"$d/nginx.conf"
}
up_port="$(free_port)"
upstream_conf "$tmp/upstream" "$up_port"
start_nginx upstream "$tmp/upstream" "$tmp/upstream/nginx.conf" "$UPSTREAM_CPU"
wait_ready upstream "http://127.0.0.1:$up_port"
for r in $all_rows; do
    got="$(post "$r" "http://127.0.0.1:$up_port" | cmp - "$tmp/resp-$r.json" && echo same)" || true
    [ "$got" = same ] || { echo "upstream: the answer at $(path_of "$r") is not $tmp/resp-$r.json (--keep to see it)" >&2; KEEP=1; exit 1; }
done
PORT[direct]=$up_port
cand_port=""
case " $TARGETS " in *" vigil-shadow-"*|*" vigil-mirror-"*)
    cand_port="$(free_port)"
    upstream_conf "$tmp/candidate" "$cand_port"
    start_nginx candidate "$tmp/candidate" "$tmp/candidate/nginx.conf" "$UPSTREAM_CPU"
    wait_ready candidate "http://127.0.0.1:$cand_port"
    log "candidate nginx on 127.0.0.1:$cand_port (the mirror target)" ;;
esac
log "upstream nginx on 127.0.0.1:$up_port${UPSTREAM_CPU:+ (pinned to CPU $UPSTREAM_CPU)}"

# ---- the targets ------------------------------------------------------------------------------
for t in $TARGETS; do
    case "$t" in
        direct) ;;
        nginx)
            port="$(free_port)"; dir="$tmp/nginx"; mkdir -p "$dir"
            {
                nginx_common "$dir"
                cat <<EOF
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
$(nginx_temp_paths "$dir")
    upstream up {
        server 127.0.0.1:$up_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
            } >"$dir/nginx.conf"
            start_nginx nginx "$dir" "$dir/nginx.conf"
            PORT[nginx]=$port
            wait_ready nginx "http://127.0.0.1:$port"
            log "nginx proxy_pass on 127.0.0.1:$port"
            ;;
        haproxy)
            # The nginx target's equivalent: one thread, keep-alive to the upstream with idle
            # connections shared between client connections (http-reuse always, as nginx's
            # upstream keepalive pool), nothing logged (no `log` line), timeouts generous.
            port="$(free_port)"; dir="$tmp/haproxy"; mkdir -p "$dir"
            cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-request 30s
    timeout http-keep-alive 75s

frontend fe
    bind 127.0.0.1:$port
    default_backend up

backend up
    server up 127.0.0.1:$up_port
EOF
            "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
                || { echo "haproxy refused its config:" >&2; cat "$dir/check.log" >&2; exit 1; }
            # -db: foreground, one process (no master-worker): MAINPID is the proxy itself.
            "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
            pids+=($!)
            MAINPID[haproxy]=$!
            PORT[haproxy]=$port
            wait_ready haproxy "http://127.0.0.1:$port"
            log "haproxy on 127.0.0.1:$port ($("$HAPROXY" -v 2>&1 | sed -n 1p))"
            ;;
        vigil-*)
            threads="${t##*-w}"
            tap=true; [[ "$t" == vigil-notap-* ]] && tap=false
            port="$(free_port)"; admin="$(free_port)"; dir="$tmp/$t"; mkdir -p "$dir"
            cat >"$dir/vigil.toml" <<EOF
# $t: everything at its default but these.
[runtime]
worker_threads = $threads

[capture]
enabled = $tap

[proxy]
drain_timeout = "2s"

[shadow]
enabled = $([[ "$t" == vigil-shadow-* || "$t" == vigil-mirror-* ]] && echo true || echo false)
EOF
            if [[ "$t" == vigil-drift-* || "$t" == vigil-log-* || "$t" == vigil-shadow-* || "$t" == vigil-mirror-* ]]; then
                # Drift on: a 2,000-row reference for the request's 8 features and the output y,
                # so every exchange is decoded and fed to the default monitors.
                python3 - "$dir/reference.csv" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write(",".join(f"x{j}" for j in range(8)) + ",y\n")
    for _ in range(2000):
        f.write(",".join(f"{random.gauss(0.1 * (j + 1), 0.1):.6f}" for j in range(8)) + f",{random.random():.6f}\n")
PY
                cat >>"$dir/vigil.toml" <<EOF

[reference]
file = "$dir/reference.csv"

[schema]
predictions = ["y"]

[prediction_log]
enabled = $([[ "$t" == vigil-drift-* || "$t" == vigil-mirror-* ]] && echo false || echo true)
EOF
            fi
            extra_upstream=()
            if [[ "$t" == vigil-shadow-* || "$t" == vigil-mirror-* ]]; then
                # Everything on: drift, the prediction log, 100% of requests mirrored to a
                # candidate (a second nginx like the upstream), the what-if kinds at their
                # default budgets.
                cat >>"$dir/vigil.toml" <<EOF

[shadow.mirror.candidates]
cand = 1.0
EOF
                extra_upstream=(--upstream "cand=http://127.0.0.1:$cand_port")
            fi
            "$VIGIL" run -c "$dir/vigil.toml" --upstream "up=http://127.0.0.1:$up_port" "${extra_upstream[@]}" \
                --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --state-dir "$dir/state" \
                >"$dir/vigil.log" 2>&1 &
            pids+=($!)
            MAINPID[$t]=$!
            PORT[$t]=$port
            ADMIN[$t]=$admin
            wait_ready "$t" "http://127.0.0.1:$port"
            log "$t on 127.0.0.1:$port (worker_threads=$threads, capture.enabled=$tap)"
            if [[ "$t" == vigil-drift-* || "$t" == vigil-log-* || "$t" == vigil-shadow-* || "$t" == vigil-mirror-* ]]; then
                records=0
                for _ in $(seq 50); do
                    records="$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^vigil_records_total/ {s+=$2} END {print s+0}')"
                    [ "$records" -gt 0 ] && break
                    sleep 0.1
                done
                [ "$records" -gt 0 ] || { echo "$t: no records decoded after the readiness requests" >&2; exit 1; }
            fi
            ;;
    esac
done

# Every process of a target: nginx's master and its workers, haproxy's one process, vigil's one
# process (all threads: /proc/PID/stat of a thread-group leader sums its threads).
procs_of() { # name
    local main="${MAINPID[$1]:-}"
    [ -n "$main" ] || return 0
    echo "$main"
    pgrep -P "$main" 2>/dev/null || true
}
cpu_ticks() { # pids... -> "utime stime" summed, clock ticks
    local user=0 sys=0 line f
    for pid in "$@"; do
        line="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        read -ra f <<<"${line##*) }"
        user=$((user + f[11])); sys=$((sys + f[12]))
    done
    echo "$user $sys"
}
machine_ticks() { # -> "busy total" from /proc/stat
    local user nice system idle iowait irq softirq steal rest
    read -r _ user nice system idle iowait irq softirq steal rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
# Peak resident memory of a target during a measurement: writing 5 to /proc/PID/clear_refs resets
# the process's high-water mark (VmHWM) to its current RSS (Linux >= 4.0; our own processes), so
# VmHWM read at the end is the peak of the measured window. Summed over the target's processes.
reset_peak_rss() { # pids... -> fails when a reset was refused (the peak is then since start)
    local pid ok=0
    for pid in "$@"; do echo 5 2>/dev/null >"/proc/$pid/clear_refs" || ok=1; done
    return $ok
}
peak_rss_kib() { # pids... -> KiB, or - for none
    local pid v sum=0
    [ $# -gt 0 ] || { echo -; return; }
    for pid in "$@"; do
        v="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# vigil's own account of what its analysis did, from its /metrics (counters summed over labels):
# captures offered to the analysis queue, captures dropped because it was full, rows decoded,
# rows written to the prediction log, rows the log dropped, mirrored requests sent, and mirrored
# requests not sent (shed, paused or dropped by the shadow budgets); mirrored requests are every
# shadow request of kind mirror: to the candidate and the noise-floor copies to the live version.
# Work queued during the warmup and done in the window counts in the window. "-" for other targets.
VIGIL_COUNTS="captures dropped decoded logged log_dropped mirrored not_mirrored"
vigil_counts() { # target -> the counters, space-separated, in VIGIL_COUNTS order
    local admin="${ADMIN[$1]:-}"
    [ -n "$admin" ] || { echo -; return; }
    { curl -s --max-time 5 "http://127.0.0.1:$admin/metrics" || true; } | awk '
        /^vigil_captures_total[ {]/ { c += $NF }
        /^vigil_captures_dropped_total[ {]/ { d += $NF }
        /^vigil_records_total[ {]/ { r += $NF }
        /^vigil_prediction_log_rows_total[ {]/ { l += $NF }
        /^vigil_prediction_log_dropped_total[ {]/ { ld += $NF }
        /^vigil_shadow_requests_total\{/ && /kind="mirror"/ {
            if ($0 ~ /result="(shed|paused|dropped)"/) mn += $NF; else m += $NF
        }
        END { printf "%d %d %d %d %d %d %d\n", c, d, r, l, ld, m, mn }'
}
counts_delta() { # "before" "after" -> name=delta,... (or -)
    if [ "$1" = - ] || [ "$2" = - ]; then echo -; return; fi
    local -a a b names
    local k out=""
    read -ra a <<<"$1"; read -ra b <<<"$2"; read -ra names <<<"$VIGIL_COUNTS"
    for k in "${!names[@]}"; do out+="${out:+,}${names[k]}=$((b[k] - a[k]))"; done
    echo "$out"
}

run_oha() { # seconds rate url rows json-out
    "$OHA" -z "$1s" -q "$2" -c "$CONNECTIONS" -m POST -T application/json "${OHA_BODYFILE[@]}" \
        "$tmp/req-$4.json" "${OHA_LATCORR[@]}" "${OHA_TUI[@]}" "${OHA_JSON[@]}" "$3" >"$5" 2>"$5.err"
}

# CPU time of this shell's waited-for children (oha, mostly), in clock ticks, from `times`. The
# builtin must run in this shell, not in a $(...) subshell, whose children times start at zero.
children_ticks() {
    times >"$tmp/times"
    python3 -c '
import re, sys
line = open(sys.argv[1]).read().splitlines()[1]  # children: "XmY.YYYs XmY.YYYs" user, system
t = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", line))
print(round(t * int(sys.argv[2])))' "$tmp/times" "$hz" >"$tmp/children_ticks"
}

# ---- the matrix -------------------------------------------------------------------------------
# The box may be shared (builds, tests): each measurement also records the machine's busy ticks;
# what is left of them once the proxy, the model servers (upstream and candidate) and oha are
# taken out ("other") is someone else's load. A measurement with more than OTHER_MAX cores of
# other load is repeated, at most RETRIES times; the last attempt is kept, and the report shows
# the other load of each.
OTHER_MAX="${OTHER_MAX:-0.15}"
RETRIES="${RETRIES:-2}"
hz="$(getconf CLK_TCK)"
raw="$tmp/raw.tsv"
printf 'scenario\tround\trows\trate\textra\ttarget\tjson\tjson2\tproxy_ticks\tproxy_user_ticks\tproxy_sys_ticks\tupstream_ticks\toha_ticks\tbusy_ticks\ttotal_ticks\twall_s\tpeak_rss_kib\trss_reset\tvigil\tattempts\n' >"$raw"
read -ra target_list <<<"$TARGETS"
n_targets=${#target_list[@]}
est=0
for sc in $SCENARIOS; do
    case "$sc" in
        steady) n=$((ROUNDS * $(wc -w <<<"$RATES") * $(wc -w <<<"$ROWS") * n_targets))
            est=$((est + n * (DURATION + WARMUP + 2)))
            log "steady: $n measurements of ${DURATION}s (+${WARMUP}s warmup)" ;;
        ramp) steps=$(( RAMP_MAX >= RAMP_START ? (RAMP_MAX - RAMP_START) / RAMP_STEP + 1 : 0 ))
            n=$((ROUNDS * $(wc -w <<<"$RAMP_ROWS") * n_targets))
            log "ramp: $n ramps of at most $steps steps of ${RAMP_DURATION}s (+${RAMP_WARMUP}s warmup), $RAMP_START to $RAMP_MAX req/s; a target leaves at its first step not held"
            est=$((est + n * 3 * (RAMP_DURATION + RAMP_WARMUP + 2))) ;;
        spike) n=$((ROUNDS * $(wc -w <<<"$SPIKE_ROWS") * n_targets))
            est=$((est + n * (SPIKE_DURATION + WARMUP + 2)))
            log "spike: $n measurements of ${SPIKE_DURATION}s at $SPIKE_BASE req/s (+${WARMUP}s warmup), +$SPIKE_EXTRA req/s from ${SPIKE_AT}s for ${SPIKE_SECONDS}s" ;;
    esac
done
log "about $((est / 60)) min on a quiet box${RAMP_ROWS:+ (a ramp counted as 3 steps per target: it may take longer)}"

# Waits (at most QUIET_WAIT seconds) until the box is quiet: under OTHER_MAX cores busy over one
# second while nothing of ours is loaded.
QUIET_WAIT="${QUIET_WAIT:-600}"
wait_quiet() {
    local b0 a0 b1 a1 busy waited=0
    while :; do
        read -r b0 a0 < <(machine_ticks); sleep 1; read -r b1 a1 < <(machine_ticks)
        busy="$(python3 -c "print(round(($b1-$b0) / $hz, 2))")"
        python3 -c "import sys; sys.exit(0 if $busy <= $OTHER_MAX else 1)" && return 0
        [ "$waited" = 0 ] && log "  the box is busy ($busy cores, not ours): waiting for quiet, at most ${QUIET_WAIT}s"
        waited=$((waited + 3))
        [ "$waited" -ge "$QUIET_WAIT" ] && { log "  still busy after ${QUIET_WAIT}s: measuring anyway"; return 0; }
        sleep 2
    done
}

# One measurement of one target: wait for a quiet box, warm up, then the scenario's load with
# every counter read before and after. steady and ramp: one oha at RATE for the scenario's
# duration. spike: one oha at RATE (SPIKE_BASE) for SPIKE_DURATION and, from SPIKE_AT seconds on,
# a second oha (connections of its own) adding SPIKE_EXTRA req/s for SPIKE_SECONDS; its JSON is
# JSON with -spike before .json.
measure() { # scenario round rows rate target json -> one raw line on stdout
    local sc="$1" round="$2" rows="$3" rate="$4" t="$5" json="$6"
    local url json2=- extra=0 dur warm bpid
    url="http://127.0.0.1:${PORT[$t]}$(path_of "$rows")"
    local attempt pu0 ps0 pu1 ps1 p0 p1 u0 u1 o0 o1 b0 b1 a0 a1 w0 w1 other tprocs uprocs x peak reset c0 c1
    case "$sc" in
        steady) dur="$DURATION"; warm="$WARMUP" ;;
        ramp) dur="$RAMP_DURATION"; warm="$RAMP_WARMUP" ;;
        spike) dur="$SPIKE_DURATION"; warm="$WARMUP"; json2="${json%.json}-spike.json"; extra="$SPIKE_EXTRA" ;;
    esac
    for attempt in $(seq $((RETRIES + 1))); do
        wait_quiet
        if [ "$warm" -gt 0 ]; then run_oha "$warm" "$rate" "$url" "$rows" "$tmp/warmup.json"; fi
        mapfile -t tprocs < <(if [ "$t" != direct ]; then procs_of "$t"; fi)
        mapfile -t uprocs < <(procs_of upstream; procs_of candidate)
        c0="$(vigil_counts "$t")"
        read -r pu0 ps0 < <(cpu_ticks "${tprocs[@]}"); read -r u0 x < <(cpu_ticks "${uprocs[@]}"); u0=$((u0 + x))
        reset=1; reset_peak_rss "${tprocs[@]}" || reset=0
        children_ticks; o0="$(cat "$tmp/children_ticks")"; read -r b0 a0 < <(machine_ticks)
        w0="$(date +%s.%N)"
        if [ "$sc" = spike ]; then
            run_oha "$dur" "$rate" "$url" "$rows" "$json" &
            bpid=$!
            sleep "$SPIKE_AT"
            run_oha "$SPIKE_SECONDS" "$extra" "$url" "$rows" "$json2"
            wait "$bpid"
        else
            run_oha "$dur" "$rate" "$url" "$rows" "$json"
        fi
        w1="$(date +%s.%N)"
        read -r b1 a1 < <(machine_ticks); children_ticks; o1="$(cat "$tmp/children_ticks")"
        read -r pu1 ps1 < <(cpu_ticks "${tprocs[@]}"); read -r u1 x < <(cpu_ticks "${uprocs[@]}"); u1=$((u1 + x))
        peak="$(peak_rss_kib "${tprocs[@]}")"
        c1="$(vigil_counts "$t")"
        p0=$((pu0 + ps0)); p1=$((pu1 + ps1))
        other="$(python3 -c "print(round(max(0, ($b1-$b0) - ($p1-$p0) - ($u1-$u0) - ($o1-$o0)) / $hz / ($w1-$w0), 3))")"
        if python3 -c "import sys; sys.exit(0 if $other <= $OTHER_MAX else 1)"; then break; fi
        log "  other load on the box: $other cores during $t at $rate req/s (attempt $attempt)"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$sc" "$round" "$rows" "$rate" "$extra" "$t" "$json" "$json2" \
        $((p1 - p0)) $((pu1 - pu0)) $((ps1 - ps0)) $((u1 - u0)) $((o1 - o0)) $((b1 - b0)) $((a1 - a0)) \
        "$(python3 -c "print(round($w1 - $w0, 3))")" "$peak" "$reset" "$(counts_delta "$c0" "$c1")" "$attempt"
}

brief() { # oha json -> one line for the log
    python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); s = d["summary"]; p = d["latencyPercentiles"]


def us(v):
    return "n/a" if v is None else f"{v * 1e6:.0f} us"


print(f"{s['requestsPerSec']:.0f} req/s, p50 {us(p.get('p50'))}, p99 {us(p.get('p99'))}, "
      f"ok {(s.get('successRate') or 0) * 100:.2f}%")
EOF
}

# ---- profile mode --------------------------------------------------------------------------------
if [ -n "$PROFILE" ]; then
    rate="${RATES##* }"
    prows="${ROWS%% *}"
    url="http://127.0.0.1:${PORT[$PROFILE]}$(path_of "$prows")"
    out="loadtest/bench/profile-$PROFILE-$rate-$(date +%Y%m%d-%H%M%S).txt"
    mapfile -t tprocs < <(procs_of "$PROFILE")
    summary_of() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['summary']; p=d['latencyPercentiles']; n=sum(d['statusCodeDistribution'].values()); print(n, f\"{s['requestsPerSec']:.0f} req/s, p50 {p['p50']*1e6:.0f} us, p99 {p['p99']*1e6:.0f} us, p99.9 {p['p99.9']*1e6:.0f} us\")" "$1"; }
    wait_quiet
    run_oha "$WARMUP" "$rate" "$url" "$prows" "$tmp/warmup.json"
    # 1. Counts, without sampling: syscalls and context switches per request (perf stat), and
    #    user/system CPU per request (/proc). Tracepoints cost a little per syscall, so this pass
    #    is not the matrix's CPU figure.
    events="context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex"
    read -r pu0 ps0 < <(cpu_ticks "${tprocs[@]}")
    perf stat -x, -e "$events" -p "$(IFS=,; echo "${tprocs[*]}")" -o "$tmp/perf-stat.csv" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
    run_oha "$DURATION" "$rate" "$url" "$prows" "$tmp/stat.json"
    wait "$perf_pid" || true
    read -r pu1 ps1 < <(cpu_ticks "${tprocs[@]}")
    read -r n_stat stat_line < <(summary_of "$tmp/stat.json")
    # 2. Sampling: software clock (no hardware counters in this VM), DWARF unwinding since neither
    #    std nor vigil keeps frame pointers. Every process of the target (nginx: master and worker).
    read -r qu0 qs0 < <(cpu_ticks "${tprocs[@]}")
    perf record -F 499 --call-graph dwarf,16384 -p "$(IFS=,; echo "${tprocs[*]}")" -o "$tmp/perf.data" \
        -- sleep "$DURATION" >"$tmp/perf-record.log" 2>&1 &
    perf_pid=$!
    run_oha "$DURATION" "$rate" "$url" "$prows" "$tmp/profile.json"
    wait "$perf_pid" || true
    read -r qu1 qs1 < <(cpu_ticks "${tprocs[@]}")
    read -r n_prof prof_line < <(summary_of "$tmp/profile.json")
    perf script -i "$tmp/perf.data" -F comm,tid,time,ip,sym,dso 2>/dev/null >"$tmp/perf.script"
    n_samples="$(grep -c '^[^[:space:]]' "$tmp/perf.script" || true)"
    us_per_sample="$(python3 -c "print(($qu1 - $qu0 + $qs1 - $qs0) * 1e6 / $hz / max(1, $n_samples))")"
    {
        echo "# perf profile of $PROFILE at $rate req/s, payload $prows, ${DURATION}s per pass (vigil $vigil_rev)"
        echo "# command: $cmdline"
        echo
        echo "## Pass 1, counted (perf stat): $stat_line"
        python3 - "$tmp/perf-stat.csv" "$n_stat" "$pu0" "$ps0" "$pu1" "$ps1" "$hz" <<'EOF'
import sys
path, n, pu0, ps0, pu1, ps1, hz = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:8])
print(f"  CPU per request: user {(pu1 - pu0) * 1e6 / hz / n:.1f} µs, system {(ps1 - ps0) * 1e6 / hz / n:.1f} µs")
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        print(f"  {f[2]:<32} {int(float(f[0])) / n:6.2f} per request")
EOF
        echo
        echo "## Pass 2, sampled (perf record, 499 Hz, DWARF call chains): $prof_line"
        python3 "$here/perf-summary.py" --us-per-sample "$us_per_sample" --requests "$n_prof" <"$tmp/perf.script"
    } >"$out"
    cp "$tmp/perf.data" "${out%.txt}.perf.data" 2>/dev/null || true
    cat "$out"
    log "profile written to $out (raw samples: ${out%.txt}.perf.data, for perf report -i)"
    exit 0
fi

order_of_round() { # round -> the targets in this round's order (reversed in even rounds)
    local k
    if [ $(($1 % 2)) = 0 ]; then
        for ((k = n_targets - 1; k >= 0; k--)); do echo "${target_list[k]}"; done
    else
        printf '%s\n' "${target_list[@]}"
    fi
}

i=0
for sc in $SCENARIOS; do
    for round in $(seq "$ROUNDS"); do
        mapfile -t order < <(order_of_round "$round")
        case "$sc" in
        steady)
            for rows in $ROWS; do
                for rate in $RATES; do
                    for t in "${order[@]}"; do
                        i=$((i + 1))
                        json="$tmp/steady-r$round-$rows-$rate-$t.json"
                        measure steady "$round" "$rows" "$rate" "$t" "$json" >>"$raw"
                        log "[$i] steady, round $round, rows $rows, $rate req/s, $t: $(brief "$json")"
                    done
                done
            done ;;
        ramp)
            # Every target still holding goes through each step, interleaved, so that a step's
            # targets see the same box; a target leaves at the first step it does not hold.
            for rows in $RAMP_ROWS; do
                alive=("${order[@]}")
                rate="$RAMP_START"
                while [ ${#alive[@]} -gt 0 ] && [ "$rate" -le "$RAMP_MAX" ]; do
                    next=()
                    for t in "${alive[@]}"; do
                        i=$((i + 1))
                        json="$tmp/ramp-r$round-$rows-$rate-$t.json"
                        measure ramp "$round" "$rows" "$rate" "$t" "$json" >>"$raw"
                        log "[$i] ramp, round $round, rows $rows, $rate req/s, $t: $(brief "$json")"
                        if why="$(python3 "$here/summarize.py" held "$json" "$rate" --hold "$RAMP_HOLD" --p99-ms "$RAMP_P99_MS")"; then
                            next+=("$t")
                        else
                            log "  $t does not hold $rate req/s ($why): it leaves the ramp"
                        fi
                    done
                    alive=("${next[@]}")
                    rate=$((rate + RAMP_STEP))
                done
                [ ${#alive[@]} -eq 0 ] || log "  still holding at the last step, $RAMP_MAX req/s: ${alive[*]}"
            done ;;
        spike)
            for rows in $SPIKE_ROWS; do
                for t in "${order[@]}"; do
                    i=$((i + 1))
                    json="$tmp/spike-r$round-$rows-$t.json"
                    measure spike "$round" "$rows" "$SPIKE_BASE" "$t" "$json" >>"$raw"
                    log "[$i] spike, round $round, rows $rows, $t: baseline $(brief "$json"); spike $(brief "${json%.json}-spike.json")"
                done
            done ;;
        esac
    done
done

# ---- report -----------------------------------------------------------------------------------
payloads=""
for r in $all_rows; do
    has "$ROWS $RAMP_ROWS $SPIKE_ROWS" "$r" || continue
    if [ "$r" = kib ]; then
        payloads+="; kib: POST $(path_of kib), one FP32 row padded to a ${BODY_BYTES}-byte JSON, answered with a ${BODY_BYTES}-byte JSON"
    else
        payloads+="; rows=$r: POST $(path_of "$r"), V2 request of [$r, 8] FP64 ($(wc -c <"$tmp/req-$r.json") bytes), answered with [$r, 1] FP64 predictions ($(wc -c <"$tmp/resp-$r.json") bytes)"
    fi
done
meta=(
    --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    --meta "machine=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
    --meta "vigil=$vigil_rev"
    --meta "nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    --meta "oha=$("$OHA" --version), latency correction $LATCORR_NOTE"
    --meta "load=constant rate, $CONNECTIONS connections${payloads}"
    --meta "other_max=$OTHER_MAX"
    --meta "upstream=nginx, 1 worker, return 200, keepalive${UPSTREAM_CPU:+, pinned to CPU $UPSTREAM_CPU with taskset}; proxies and oha unpinned"
    --meta "ramp_max=$RAMP_MAX"
    --meta "ramp_hold=$RAMP_HOLD"
    --meta "ramp_p99_ms=$RAMP_P99_MS"
)
[ -z "$HAPROXY" ] || meta+=(--meta "haproxy=$("$HAPROXY" -v 2>&1 | sed -n 1p | sed 's/ - https.*//'), nbthread 1, http-reuse always, no logging")
has "$SCENARIOS" steady && meta+=(--meta "steady=${DURATION}s measured after ${WARMUP}s warmup per target, rate and payload; $ROUNDS rounds, targets interleaved, order reversed in even rounds")
has "$SCENARIOS" ramp && meta+=(--meta "ramp=steps of $RAMP_STEP req/s from $RAMP_START to $RAMP_MAX, ${RAMP_DURATION}s measured after ${RAMP_WARMUP}s warmup per step; every target still holding runs each step, interleaved; a step is held when achieved >= $RAMP_HOLD x offered, no non-2xx or error, and p99 <= $RAMP_P99_MS ms; $ROUNDS rounds")
has "$SCENARIOS" spike && meta+=(--meta "spike=a baseline oha at $SPIKE_BASE req/s for ${SPIKE_DURATION}s (after ${WARMUP}s warmup), and a second oha with $CONNECTIONS connections of its own adding $SPIKE_EXTRA req/s from ${SPIKE_AT}s to $((SPIKE_AT + SPIKE_SECONDS))s; $ROUNDS rounds")
mkdir -p "$(dirname "$OUT")"
python3 "$here/summarize.py" "$raw" --hz "$hz" --command "$cmdline" "${meta[@]}" >"$OUT"
cat "$OUT"
log "results written to $OUT"
