#!/usr/bin/env python3
"""Turns proxy-overhead.sh's raw measurements (a TSV of oha JSON paths and CPU tick counts) into
the markdown report: a summary per target and rate, the vigil/nginx comparison, and every
measurement.

Added latency is a percentile of the target minus the same percentile of `direct` at the same rate
in the same round. The summary takes the median over rounds (robust to one disturbed round) and
shows the range.
"""
import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict

NAN = float("nan")


def load(raw, hz):
    rows = []
    with open(raw) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            d = json.load(open(r["json"]))
            s, p = d["summary"], d["latencyPercentiles"]
            codes = d.get("statusCodeDistribution") or {}
            n = sum(codes.values())
            ok = codes.get("200", 0)
            errors = sum((d.get("errorDistribution") or {}).values())
            k = 1000.0 / hz  # ms per tick

            def per_k(ticks):
                return ticks * k / (n / 1000.0) if n else NAN

            direct = r["target"] == "direct"
            rows.append({
                "round": int(r["round"]),
                "rate": int(r["rate"]),
                "target": r["target"],
                "achieved": s["requestsPerSec"],
                "n": n,
                "ok_pct": 100.0 * ok / (n + errors) if n + errors else 0.0,
                "non200": n - ok,
                "errors": errors,
                "p50": p["p50"] * 1e6,
                "p99": p["p99"] * 1e6,
                "p999": p["p99.9"] * 1e6,
                "cpu": None if direct else per_k(int(r["proxy_ticks"])),
                "cpu_user": None if direct else per_k(int(r.get("proxy_user_ticks", 0) or 0)),
                "cpu_sys": None if direct else per_k(int(r.get("proxy_sys_ticks", 0) or 0)),
                "up_cpu": per_k(int(r["upstream_ticks"])),
                "oha_cpu": per_k(int(r["oha_ticks"])),
                "busy_pct": 100.0 * int(r["busy_ticks"]) / max(1, int(r["total_ticks"])),
                # busy ticks not accounted for by the proxy, the upstream or oha: someone else's load
                "other": max(0, int(r["busy_ticks"]) - int(r["proxy_ticks"]) - int(r["upstream_ticks"])
                             - int(r["oha_ticks"])) / hz / float(r["wall_s"]),
                "attempts": int(r["attempts"]),
            })
    base = {(x["round"], x["rate"]): x for x in rows if x["target"] == "direct"}
    for x in rows:
        b = base.get((x["round"], x["rate"]))
        for q in ("p50", "p99", "p999"):
            x["add_" + q] = x[q] - b[q] if b else NAN
    return rows


def ok(v):
    return v is not None and v == v


def us(v, signed=False):
    if not ok(v):
        return "n/a"
    return f"{v:+.0f}" if signed else f"{v:.0f}"


def ms(v):
    return f"{v:.1f}" if ok(v) else "n/a"


def med(vals):
    vals = [v for v in vals if ok(v)]
    return statistics.median(vals) if vals else NAN


def spread(vals, fmt, signed=False):
    """median, and the range when there is more than one value."""
    vals = [v for v in vals if ok(v)]
    if not vals:
        return "n/a"
    f = (lambda v: us(v, signed)) if fmt == "us" else ms
    m = statistics.median(vals)
    if len(vals) == 1:
        return f(m)
    return f"{f(m)} ({f(min(vals))}..{f(max(vals))})"


def target_key(t):
    order = ["direct", "nginx"]
    return (order.index(t) if t in order else 2, t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--hz", type=int, default=100)
    ap.add_argument("--command", default="")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    rows = load(a.raw, a.hz)
    meta = dict(m.split("=", 1) for m in a.meta)
    rates = sorted({x["rate"] for x in rows})
    targets = sorted({x["target"] for x in rows}, key=target_key)
    rounds = sorted({x["round"] for x in rows})
    by = defaultdict(list)
    for x in rows:
        by[(x["rate"], x["target"])].append(x)
    out = []
    w = out.append

    w(f"### Proxy overhead run, {meta.get('date', '')}")
    w("")
    w(f"Command: `{a.command}`")
    w("")
    for key in ("machine", "vigil", "nginx", "oha", "load", "timing", "upstream"):
        if key in meta:
            w(f"- {key}: {meta[key]}")
    w("- latencies in µs; added = target minus direct, same rate and round; CPU = utime+stime of the "
      "proxy's processes (nginx: master + worker; vigil: all threads) per 1,000 responses, from "
      "/proc/PID/stat")
    w("")
    w(f"#### Summary: median of {len(rounds)} round(s), range in brackets")
    w("")
    w("| target | rate | achieved req/s | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 "
      "| CPU ms / 1k req | of which user / sys | success |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rate in rates:
        for t in targets:
            xs = by.get((rate, t))
            if not xs:
                continue

            def g(k):
                return [x[k] for x in xs]

            row = (f"| {t} | {rate} | {med(g('achieved')):.0f} | {spread(g('p50'), 'us')} "
                   f"| {spread(g('p99'), 'us')} | {spread(g('p999'), 'us')} ")
            if t == "direct":
                row += "| - | - | - | - | - "
            else:
                row += (f"| {spread(g('add_p50'), 'us', True)} | {spread(g('add_p99'), 'us', True)} "
                        f"| {spread(g('add_p999'), 'us', True)} | {spread(g('cpu'), 'ms')} "
                        f"| {ms(med(g('cpu_user')))} / {ms(med(g('cpu_sys')))} ")
            w(row + f"| {min(g('ok_pct')):.2f}% |")
    w("")

    vigils = [t for t in targets if t.startswith("vigil")]
    if "nginx" in targets and vigils:
        w("#### vigil against nginx, same rate and round (median over rounds; each round in brackets)")
        w("")
        w("CPU ratio = vigil CPU per request / nginx CPU per request. Added-p99 ratio = vigil's added p99 / "
          "nginx's added p99, shown only when nginx's is at least 50 µs (a ratio of two differences near "
          "zero is noise). p99 gap = vigil p99 - nginx p99, the same comparison without the direct run.")
        w("")
        w("| vigil variant | rate | CPU ratio | added-p99 ratio | p99 gap, µs | p50 gap, µs | p99.9 gap, µs |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        verdicts = []
        for rate in rates:
            ng = {x["round"]: x for x in by.get((rate, "nginx"), [])}
            for v in vigils:
                vs = {x["round"]: x for x in by.get((rate, v), [])}
                common = sorted(set(ng) & set(vs))
                if not common:
                    continue

                def each(f, fmt):
                    vals = [f(vs[r], ng[r]) for r in common]
                    m = med(vals)
                    txt = fmt(m)
                    if len(vals) > 1:
                        txt += " (" + ", ".join(fmt(x) for x in vals) + ")"
                    return m, txt

                cr, ctxt = each(lambda a, b: a["cpu"] / b["cpu"] if b["cpu"] else NAN,
                                lambda x: f"{x:.2f}" if ok(x) else "n/a")
                m_ng_add = med(ng[r]["add_p99"] for r in common)
                m_v_add = med(vs[r]["add_p99"] for r in common)
                ptxt = f"{m_v_add / m_ng_add:.2f}" if m_ng_add >= 50 else "n/a"
                gap, gtxt = each(lambda a, b: a["p99"] - b["p99"], lambda x: us(x, True))
                _, g50 = each(lambda a, b: a["p50"] - b["p50"], lambda x: us(x, True))
                _, g999 = each(lambda a, b: a["p999"] - b["p999"], lambda x: us(x, True))
                w(f"| {v} | {rate} | {ctxt} | {ptxt} | {gtxt} | {g50} | {g999} |")
                if rate == 5000 and not v.startswith("vigil-notap"):
                    # Round-to-round spread of direct's p99: what "within noise" means here.
                    dp = [x["p99"] for x in by.get((rate, "direct"), [])]
                    noise = (max(dp) - min(dp)) if len(dp) > 1 else NAN
                    cpu_ok = cr <= 1.0
                    p99_ok = gap <= 0
                    within = ok(noise) and abs(gap) <= noise
                    verdicts.append(
                        f"- {v}: CPU per request {cr:.2f}x nginx ({'met' if cpu_ok else 'not met'}); "
                        f"added p99 {us(m_v_add, True)} µs vs nginx {us(m_ng_add, True)} µs, p99 gap "
                        f"{us(gap, True)} µs ({'met' if p99_ok else 'not met'}"
                        + (f"; direct's own p99 moved {noise:.0f} µs between rounds, so the gap is within noise"
                           if within else "") + ")")
        w("")
        if verdicts:
            w("Goal, at 5,000 req/s: vigil with the tap on costs no more CPU per request, and adds no more "
              "p99, than nginx.")
            w("")
            out.extend(verdicts)
            w("")

    w("#### Every measurement")
    w("")
    w("| round | rate | target | achieved req/s | responses | non-200 / errors | p50 | p99 | p99.9 "
      "| added p99 | proxy CPU ms / 1k (user + sys) | upstream CPU ms / 1k | oha CPU ms / 1k | machine busy "
      "| other load | attempts |")
    w("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: | ---: |")
    for x in sorted(rows, key=lambda x: (x["rate"], target_key(x["target"]), x["round"])):
        cpu = "-" if x["cpu"] is None else f"{ms(x['cpu'])} ({ms(x['cpu_user'])} + {ms(x['cpu_sys'])})"
        w(f"| {x['round']} | {x['rate']} | {x['target']} | {x['achieved']:.0f} | {x['n']} "
          f"| {x['non200']} / {x['errors']} | {us(x['p50'])} | {us(x['p99'])} | {us(x['p999'])} "
          f"| {'-' if x['target'] == 'direct' else us(x['add_p99'], True)} "
          f"| {cpu} | {ms(x['up_cpu'])} | {ms(x['oha_cpu'])} "
          f"| {x['busy_pct']:.0f}% | {x['other']:.2f} | {x['attempts']} |")
    w("")
    w("machine busy: share of all CPUs busy (user+system+irq+softirq+steal, /proc/stat) during the "
      "measured window. other load: busy CPU not accounted for by the proxy, the upstream or oha, in "
      "cores (kernel threads, softirq charged to no process, other users of the box); a measurement "
      f"above {meta.get('other_max', '?')} cores was repeated, attempts counts the tries.")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
