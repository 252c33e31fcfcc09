#!/usr/bin/env bash
# Proxy overhead: direct-to-upstream vs through vigil vs through nginx proxy_pass, at fixed rates.
#
# One fast upstream (a static nginx answering 200 with a fixed 1 KiB body), then for each target
# and each rate: oha at a constant rate with 32 connections and a 1 KiB POST body, a warmup first,
# latency percentiles from oha's JSON, and the proxy's CPU time (utime+stime of every process of
# the proxy, from /proc/PID/stat) before and after, as CPU ms per 1,000 requests.
# Targets are interleaved within a round, and rounds repeat (order reversed every other round)
# so that noise shows as a spread rather than as a bias.
#
# Installs nothing. Needs: nginx (apt-get install -y nginx), oha (cargo install oha --locked),
# python3, curl, cargo. Optional: taskset (util-linux) to pin the upstream.
#
# Usage: loadtest/bench/proxy-overhead.sh [options]
#   --rates "1000 5000"   constant request rates, req/s          (env RATES)
#   --duration 20         seconds measured per target and rate    (env DURATION)
#   --warmup 5            seconds of unmeasured load before each  (env WARMUP)
#   --rounds 2            repetitions of the whole matrix         (env ROUNDS)
#   --connections 32      oha connections                         (env CONNECTIONS)
#   --targets "..."       subset of: direct nginx vigil-w1 vigil-w2 vigil-notap-w1 vigil-notap-w2
#                         vigil-drift-w1 vigil-drift-w2 vigil-log-w1 vigil-log-w2
#                         vigil-shadow-w1 vigil-shadow-w2 vigil-mirror-w1 vigil-mirror-w2
#                         (env TARGETS; direct is always added: the added latency is vs direct)
#   --upstream-cpu 1      CPU list the upstream nginx is pinned to with taskset; "" = unpinned
#                         (env UPSTREAM_CPU)
#   --out FILE            results file (default loadtest/bench/results-YYYYMMDD-HHMMSS.md)
#   --no-build            use target/release/vigil as it is (env NO_BUILD=1)
#   env OTHER_MAX=0.15    cores of load not ours above which the box counts as busy: before each
#                         measurement the script waits (QUIET_WAIT=600 s at most) for a quiet box,
#                         and a measurement that saw more is repeated (RETRIES=2 times at most)
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
PROFILE=""
KEEP=0
BODY_BYTES=1024
PATH_Q="/v2/models/bench/infer"
cmdline="loadtest/bench/proxy-overhead.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
        --rates) RATES="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --targets) TARGETS="$2"; shift 2 ;;
        --upstream-cpu) UPSTREAM_CPU="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        --keep) KEEP=1; shift ;;
        --profile) PROFILE="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || OUT="loadtest/bench/results-$(date +%Y%m%d-%H%M%S).md"
if [ -n "$PROFILE" ]; then
    TARGETS="$PROFILE"
    command -v perf >/dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 1; }
fi
case " $TARGETS " in *" direct "*) ;; *) TARGETS="direct $TARGETS" ;; esac
for t in $TARGETS; do
    case "$t" in
        direct|nginx|vigil-w[0-9]*|vigil-notap-w[0-9]*|vigil-drift-w[0-9]*|vigil-log-w[0-9]*|vigil-shadow-w[0-9]*|vigil-mirror-w[0-9]*) ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
    esac
done

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
for tool in python3 curl cargo; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; missing=1; }
done
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

if [ "$NO_BUILD" != 1 ]; then
    log "building vigil (cargo build --release -p vigil)"
    cargo build --release -p vigil >&2
fi
cp target/release/vigil "$tmp/vigil"
VIGIL="$tmp/vigil"
vigil_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    vigil_rev="$vigil_rev + uncommitted changes in src/"
fi

# ---- bodies -----------------------------------------------------------------------------------
# A V2-shaped JSON of exactly $BODY_BYTES bytes, padded with a string field. No ' $ \ inside:
# the response body goes verbatim into nginx's `return`.
make_body() { # kind -> stdout
    python3 - "$1" "$BODY_BYTES" <<'EOF'
import json, sys
kind, size = sys.argv[1], int(sys.argv[2])
if kind == "request":
    doc = {"id": "bench", "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32",
           "data": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}], "pad": ""}
else:
    doc = {"model_name": "bench", "id": "bench", "outputs": [{"name": "y", "shape": [1, 1],
           "datatype": "FP32", "data": [0.5]}], "pad": ""}
doc["pad"] = "x" * (size - len(json.dumps(doc, separators=(",", ":"))))
text = json.dumps(doc, separators=(",", ":"))
assert len(text) == size, len(text)
sys.stdout.write(text)
EOF
}
make_body request >"$tmp/request.json"
response_body="$(make_body response)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # name url
    for _ in $(seq 100); do
        code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
            --data-binary @"$tmp/request.json" "$2" || true)"
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "$1 did not answer 200 at $2; logs in $tmp (rerun with --keep)" >&2
    KEEP=1
    exit 1
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

declare -A PORT MAINPID
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

# ---- the upstream: static nginx, 1 worker, fixed 1 KiB answer, keep-alive ---------------------
# (and, for the targets that mirror, the candidate: a second such nginx, a model server of its
# own as a candidate version would be, pinned to the same CPU)
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
        location / {
            default_type application/json;
            return 200 '$response_body';
        }
    }
}
EOF
    } >"$d/nginx.conf"
}
up_port="$(free_port)"
upstream_conf "$tmp/upstream" "$up_port"
start_nginx upstream "$tmp/upstream" "$tmp/upstream/nginx.conf" "$UPSTREAM_CPU"
wait_ready upstream "http://127.0.0.1:$up_port$PATH_Q"
got="$(curl -s -X POST --data-binary @"$tmp/request.json" "http://127.0.0.1:$up_port$PATH_Q" | wc -c)"
[ "$got" = "$BODY_BYTES" ] || { echo "upstream answered $got bytes, wanted $BODY_BYTES" >&2; exit 1; }
PORT[direct]=$up_port
cand_port=""
case " $TARGETS " in *" vigil-shadow-"*|*" vigil-mirror-"*)
    cand_port="$(free_port)"
    upstream_conf "$tmp/candidate" "$cand_port"
    start_nginx candidate "$tmp/candidate" "$tmp/candidate/nginx.conf" "$UPSTREAM_CPU"
    wait_ready candidate "http://127.0.0.1:$cand_port$PATH_Q"
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
            wait_ready nginx "http://127.0.0.1:$port$PATH_Q"
            log "nginx proxy_pass on 127.0.0.1:$port"
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
            wait_ready "$t" "http://127.0.0.1:$port$PATH_Q"
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

# Every process of a target: nginx's master and its workers, vigil's one process (all threads:
# /proc/PID/stat of a thread-group leader sums its threads).
procs_of() { # name
    local main="${MAINPID[$1]}"
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
    local cpu user nice system idle iowait irq softirq steal rest
    read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

run_oha() { # seconds rate url json-out
    "$OHA" -z "$1s" -q "$2" -c "$CONNECTIONS" -m POST -T application/json "${OHA_BODYFILE[@]}" \
        "$tmp/request.json" "${OHA_LATCORR[@]}" "${OHA_TUI[@]}" "${OHA_JSON[@]}" "$3" >"$4" 2>"$4.err"
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
# what is left of them once the proxy, the upstream and oha are taken out ("other") is someone
# else's load. A measurement with more than OTHER_MAX cores of other load is repeated, at most
# RETRIES times; the last attempt is kept, and the report shows the other load of each.
OTHER_MAX="${OTHER_MAX:-0.15}"
RETRIES="${RETRIES:-2}"
hz="$(getconf CLK_TCK)"
raw="$tmp/raw.tsv"
printf 'round\trate\ttarget\tjson\tproxy_ticks\tproxy_user_ticks\tproxy_sys_ticks\tupstream_ticks\toha_ticks\tbusy_ticks\ttotal_ticks\twall_s\tattempts\n' >"$raw"
read -ra target_list <<<"$TARGETS"
n_runs=$((ROUNDS * $(wc -w <<<"$RATES") * ${#target_list[@]}))
log "$n_runs measurements of ${DURATION}s (+${WARMUP}s warmup): about $((n_runs * (DURATION + WARMUP + 2) / 60)) min"

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

measure() { # round rate target json -> one raw line on stdout
    local round="$1" rate="$2" t="$3" json="$4" url="http://127.0.0.1:${PORT[$3]}$PATH_Q"
    local attempt pu0 ps0 pu1 ps1 p0 p1 u0 u1 o0 o1 b0 b1 a0 a1 w0 w1 other tprocs uprocs x
    for attempt in $(seq $((RETRIES + 1))); do
        wait_quiet
        if [ "$WARMUP" -gt 0 ]; then run_oha "$WARMUP" "$rate" "$url" "$tmp/warmup.json"; fi
        mapfile -t tprocs < <(if [ "$t" != direct ]; then procs_of "$t"; fi)
        mapfile -t uprocs < <(procs_of upstream)
        read -r pu0 ps0 < <(cpu_ticks "${tprocs[@]}"); read -r u0 x < <(cpu_ticks "${uprocs[@]}"); u0=$((u0 + x))
        children_ticks; o0="$(cat "$tmp/children_ticks")"; read -r b0 a0 < <(machine_ticks)
        w0="$(date +%s.%N)"
        run_oha "$DURATION" "$rate" "$url" "$json"
        w1="$(date +%s.%N)"
        read -r b1 a1 < <(machine_ticks); children_ticks; o1="$(cat "$tmp/children_ticks")"
        read -r pu1 ps1 < <(cpu_ticks "${tprocs[@]}"); read -r u1 x < <(cpu_ticks "${uprocs[@]}"); u1=$((u1 + x))
        p0=$((pu0 + ps0)); p1=$((pu1 + ps1))
        other="$(python3 -c "print(round(max(0, ($b1-$b0) - ($p1-$p0) - ($u1-$u0) - ($o1-$o0)) / $hz / ($w1-$w0), 3))")"
        if python3 -c "import sys; sys.exit(0 if $other <= $OTHER_MAX else 1)"; then break; fi
        log "  other load on the box: $other cores during $t at $rate req/s (attempt $attempt)"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$rate" "$t" "$json" \
        $((p1 - p0)) $((pu1 - pu0)) $((ps1 - ps0)) $((u1 - u0)) $((o1 - o0)) $((b1 - b0)) $((a1 - a0)) \
        "$(python3 -c "print(round($w1 - $w0, 3))")" "$attempt"
}

# ---- profile mode --------------------------------------------------------------------------------
if [ -n "$PROFILE" ]; then
    rate="${RATES##* }"
    url="http://127.0.0.1:${PORT[$PROFILE]}$PATH_Q"
    out="loadtest/bench/profile-$PROFILE-$rate-$(date +%Y%m%d-%H%M%S).txt"
    mapfile -t tprocs < <(procs_of "$PROFILE")
    summary_of() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['summary']; p=d['latencyPercentiles']; n=sum(d['statusCodeDistribution'].values()); print(n, f\"{s['requestsPerSec']:.0f} req/s, p50 {p['p50']*1e6:.0f} us, p99 {p['p99']*1e6:.0f} us, p99.9 {p['p99.9']*1e6:.0f} us\")" "$1"; }
    wait_quiet
    run_oha "$WARMUP" "$rate" "$url" "$tmp/warmup.json"
    # 1. Counts, without sampling: syscalls and context switches per request (perf stat), and
    #    user/system CPU per request (/proc). Tracepoints cost a little per syscall, so this pass
    #    is not the matrix's CPU figure.
    events="context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex"
    read -r pu0 ps0 < <(cpu_ticks "${tprocs[@]}")
    perf stat -x, -e "$events" -p "$(IFS=,; echo "${tprocs[*]}")" -o "$tmp/perf-stat.csv" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
    run_oha "$DURATION" "$rate" "$url" "$tmp/stat.json"
    wait "$perf_pid" || true
    read -r pu1 ps1 < <(cpu_ticks "${tprocs[@]}")
    read -r n_stat stat_line < <(summary_of "$tmp/stat.json")
    # 2. Sampling: software clock (no hardware counters in this VM), DWARF unwinding since neither
    #    std nor vigil keeps frame pointers. Every process of the target (nginx: master and worker).
    read -r qu0 qs0 < <(cpu_ticks "${tprocs[@]}")
    perf record -F 499 --call-graph dwarf,16384 -p "$(IFS=,; echo "${tprocs[*]}")" -o "$tmp/perf.data" \
        -- sleep "$DURATION" >"$tmp/perf-record.log" 2>&1 &
    perf_pid=$!
    run_oha "$DURATION" "$rate" "$url" "$tmp/profile.json"
    wait "$perf_pid" || true
    read -r qu1 qs1 < <(cpu_ticks "${tprocs[@]}")
    read -r n_prof prof_line < <(summary_of "$tmp/profile.json")
    perf script -i "$tmp/perf.data" -F comm,tid,time,ip,sym,dso 2>/dev/null >"$tmp/perf.script"
    n_samples="$(grep -c '^[^[:space:]]' "$tmp/perf.script" || true)"
    us_per_sample="$(python3 -c "print(($qu1 - $qu0 + $qs1 - $qs0) * 1e6 / $hz / max(1, $n_samples))")"
    {
        echo "# perf profile of $PROFILE at $rate req/s, ${DURATION}s per pass (vigil $vigil_rev)"
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

i=0
for round in $(seq "$ROUNDS"); do
    order=("${target_list[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=(); for ((k = ${#target_list[@]} - 1; k >= 0; k--)); do order+=("${target_list[k]}"); done
    fi
    for rate in $RATES; do
        for t in "${order[@]}"; do
            i=$((i + 1))
            json="$tmp/r$round-$rate-$t.json"
            measure "$round" "$rate" "$t" "$json" >>"$raw"
            log "[$i/$n_runs] round $round, $rate req/s, $t: $(python3 - "$json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); s = d["summary"]; p = d["latencyPercentiles"]
print(f"{s['requestsPerSec']:.0f} req/s, p50 {p['p50']*1e6:.0f} us, p99 {p['p99']*1e6:.0f} us, ok {s['successRate']*100:.2f}%")
EOF
)"
        done
    done
done

# ---- report -----------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
python3 "$here/summarize.py" "$raw" \
    --hz "$hz" \
    --command "$cmdline" \
    --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" \
    --meta "machine=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)" \
    --meta "vigil=$vigil_rev (cargo build --release -p vigil)" \
    --meta "nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')" \
    --meta "oha=$("$OHA" --version), latency correction $LATCORR_NOTE" \
    --meta "load=constant rate, $CONNECTIONS connections, POST $PATH_Q with a ${BODY_BYTES}-byte JSON body; upstream answers 200 with a ${BODY_BYTES}-byte JSON body" \
    --meta "other_max=$OTHER_MAX" \
    --meta "timing=${DURATION}s measured after ${WARMUP}s warmup per target and rate; $ROUNDS rounds, targets interleaved, order reversed in even rounds" \
    --meta "upstream=nginx, 1 worker, return 200, keepalive${UPSTREAM_CPU:+, pinned to CPU $UPSTREAM_CPU with taskset}; proxies and oha unpinned" \
    >"$OUT"
cat "$OUT"
log "results written to $OUT"
