#!/usr/bin/env bash
# The load tables of issue 7 in one command: steady, ramp and spike scenarios with V2 payloads of
# 1, 32 and 256 rows, through every target of the comparison, same upstream and rates:
#   direct            oha straight to the upstream (the baseline of "added" latency)
#   nginx             Debian's nginx, proxy_pass with an upstream keepalive pool, 1 worker
#   haproxy           Debian's haproxy, mode http, nbthread 1, http-reuse always, no logging
#   vigil-notap-w1    vigil with everything off (no capture tap, so no analysis), 1 worker thread
#   vigil-shadow-w1   vigil with everything on: drift, the prediction log, 100% mirrored to a
#                     candidate, the what-if kinds at their default budgets, 1 worker thread
# Matrix: steady at 1,000 req/s x payloads 1 / 32 / 256 rows; ramp from 2,000 req/s in steps of
# 2,000 until each target no longer holds the rate (payloads 1 and 32 rows); spike: 1,000 req/s
# for 30 s with +4,000 req/s for 5 s in the middle (payloads 1 and 32 rows).
# Reports achieved rate, added p50 / p99 / p99.9, CPU ms per 1,000 requests, peak RSS, and the
# saturation throughput per core against nginx's, with the commands, in one markdown file.
#
# This is loadtest/bench/proxy-overhead.sh with the matrix filled in: it builds vigil in release,
# waits for a quiet box before each measurement, and stops every process it started. Needs nginx,
# haproxy (apt-get install -y nginx haproxy), oha (cargo install oha --locked), python3, curl.
# The full matrix takes about 75 minutes with 2 rounds on a quiet 2-core box.
#
# Usage: loadtest/run.sh [options] [-- more proxy-overhead.sh options]
#   --quick          a smoke check: every scenario, payload and target, 1 round, seconds-long
#                    measurements, a 2-step ramp (1,000 and 2,000 req/s); writes
#                    loadtest/bench/load-quick-*.md (git-ignored). Its figures mean nothing.
#   --rounds N       repetitions of the whole matrix (default 2)
#   --out FILE       the results file (default loadtest/bench/load-YYYYMMDD-HHMMSS.md)
#   --no-build       use target/release/vigil as it is
#   --vigil-bin P    use this vigil binary instead of building
#   -h, --help       this text; loadtest/bench/proxy-overhead.sh --help for the options after --
# Anything after -- goes to proxy-overhead.sh and overrides the matrix (e.g. -- --ramp-max 20000).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

quick=0
rounds=2
out=""
pass=()
typed="loadtest/run.sh"
for arg in "$@"; do
    case "$arg" in *" "*|"") typed+=" \"$arg\"" ;; *) typed+=" $arg" ;; esac
done
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --out) out="$2"; case "$out" in /*) ;; *) out="$PWD/$out" ;; esac; shift 2 ;;
        --no-build) pass+=(--no-build); shift ;;
        --vigil-bin) pass+=(--vigil-bin "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; pass+=("$@"); break ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done

stamp="$(date +%Y%m%d-%H%M%S)"
matrix=(
    --scenario "steady ramp spike"
    --targets "direct nginx haproxy vigil-notap-w1 vigil-shadow-w1"
    --rows "1 32 256" --rates 1000
    --ramp-rows "1 32"
    --spike-rows "1 32"
)
if [ "$quick" = 1 ]; then
    [ -n "$out" ] || out="$here/bench/load-quick-$stamp.md"
    matrix+=(
        --rounds 1 --duration 3 --warmup 1
        --ramp-start 1000 --ramp-step 1000 --ramp-max 2000 --ramp-duration 2 --ramp-warmup 1
        --spike-base 500 --spike-extra 1000 --spike-duration 6 --spike-seconds 2
    )
else
    [ -n "$out" ] || out="$here/bench/load-$stamp.md"
    matrix+=(
        --rounds "$rounds" --duration 20 --warmup 5
        --ramp-start 2000 --ramp-step 2000 --ramp-max 40000 --ramp-duration 10 --ramp-warmup 2
        --spike-base 1000 --spike-extra 4000 --spike-duration 30 --spike-seconds 5
    )
fi

# The report names this command and what it ran.
shown="loadtest/bench/proxy-overhead.sh"
for arg in "${matrix[@]}" "${pass[@]}"; do
    case "$arg" in *" "*|"") shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
done
BENCH_COMMAND="$typed (= $shown)" exec "$here/bench/proxy-overhead.sh" "${matrix[@]}" --out "$out" "${pass[@]}"
