#!/usr/bin/env bash
# Soak: vigil with everything on (the demo's setup: drift against a reference, the prediction log
# and labels joined by a labeller, 100% of v1 mirrored to v2, the what-if kinds, alerts) at a
# constant rate for a long time, sampling vigil's resident memory and open file descriptors.
#   loadtest/soak.sh [DURATION=1h] [RATE=200] [SAMPLE_EVERY=10]
# Pass: RSS and fds of the last quarter within 5% of the second quarter's (fds: or within 8), and
# no failed request in the demo's traffic report. The first quarter is warm-up: windows,
# histograms and pools fill, and the demo's 5-minute performance window fills for 5 minutes, so
# runs shorter than ~30 minutes compare a filling second quarter and read as growth.
# Writes loadtest/soak-<time>.tsv (seconds, rss_kib, fds) and prints the verdict. Not run in CI.
set -euo pipefail
duration="${1:-1h}"; rate="${2:-200}"; every="${3:-10}"
cd "$(dirname "$0")/.."
cargo build --release -q --bin vigil
secs=$(python3 -c "import re,sys; s='$duration'; u={'s':1,'m':60,'h':3600}; print(sum(int(n)*u[x] for n,x in re.findall(r'(\d+)([smh])', s)))")
out="loadtest/soak-$(date -u +%Y%m%d-%H%M%S).tsv"
log=$(mktemp)
proxy=127.0.0.1:18180; admin=127.0.0.1:19190
./target/release/vigil demo --listen "$proxy" --admin-listen "$admin" --rate "$rate" --duration "${secs}s" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$admin/readyz" >/dev/null && break; sleep 0.1; done
printf 'seconds\trss_kib\tfds\n' >"$out"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    [ -n "$rss" ] && printf '%s\t%s\t%s\n' "$(( $(date +%s) - start ))" "$rss" "$fds" >>"$out"
    sleep "$every"
done
wait "$pid" || true
python3 - "$out" "$log" "$duration" "$rate" <<'PY'
import sys, re, statistics
path, log, duration, rate = sys.argv[1:5]
rows = [l.split('\t') for l in open(path).read().splitlines()[1:]]
rows = [(int(a), int(b), int(c)) for a, b, c in rows]
if len(rows) < 8:
    sys.exit(f"soak: only {len(rows)} samples in {path}: run longer")
q = len(rows) // 4
second, last = rows[q:2 * q], rows[-q:]
def cmp(i, name, slack=0):
    a = statistics.mean(r[i] for r in second); b = statistics.mean(r[i] for r in last)
    change = (b - a) / a * 100
    ok = abs(change) <= 5 or abs(b - a) <= slack
    print(f"{name}: second quarter {a:,.0f}, last quarter {b:,.0f}: {change:+.1f}% {'ok' if ok else 'NOT FLAT'}")
    return ok
text = open(log).read()
print(f"soak {duration} at {rate} req/s, {len(rows)} samples -> {path}")
# Pooled connections (clients, mirrors, the labeller) move the fd count by a few: a leak climbs.
ok = cmp(1, "RSS KiB") & cmp(2, "open fds", slack=8)
tail = text.split("demo traffic:")[-1] if "demo traffic:" in text else ""
print("demo traffic report:" + (tail or " (none: did the demo exit early? see the log)"))
req = re.search(r"(\d+) scheduled, (\d+) sent, (\d+) ok", tail)
err = re.search(r"errors\s+(\d+) connect, (\d+) timeout, (\d+) other", tail)
clean = bool(req and err) and req.group(2) == req.group(3) and "non-2xx" not in tail and err.groups() == ("0", "0", "0")
print(f"requests: {'every one answered 2xx' if clean else 'FAILED REQUESTS (or no report)'}")
ok = ok and clean
sys.exit(0 if ok else 1)
PY
