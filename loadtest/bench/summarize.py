#!/usr/bin/env python3
"""Turns proxy-overhead.sh's raw measurements (a TSV of oha JSON paths, CPU tick counts and peak
RSS) into the markdown report: per scenario a summary per target, payload and rate, the
comparison with nginx, and every measurement.

Scenarios:
- steady: constant rates. Summary per (payload, rate, target), and each proxy against nginx.
- ramp: rising steps; a target leaves at its first step not held (`held` below). Per step, then
  the highest held rate per target and its **throughput per core**: 1000 / (CPU ms per 1,000
  requests) at that step, requests per second per core-second of the proxy, and its ratio to
  nginx's; the same at the highest step both the target and nginx held (the same offered rate).
- spike: a baseline oha for the whole window and a second oha adding load in the middle; both
  oha's figures per target.

Added latency is a percentile of the target minus the same percentile of `direct` in the same
scenario, payload, rate and round. Summaries take the median over rounds (robust to one disturbed
round) and show the range.

`summarize.py held JSON RATE [--hold 0.97] [--p99-ms 20]` is the ramp's rule, used by the script
while it ramps: exit 0 when the oha run in JSON held RATE, else exit 1 printing why.
"""
import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict

NAN = float("nan")


def oha(path):
    """The figures of one oha JSON report."""
    d = json.load(open(path))
    s, p = d["summary"], d.get("latencyPercentiles") or {}
    codes = d.get("statusCodeDistribution") or {}
    n = sum(codes.values())
    ok2xx = sum(v for k, v in codes.items() if str(k).startswith("2"))
    errors = sum((d.get("errorDistribution") or {}).values())

    def pct(k):
        v = p.get(k)
        return v * 1e6 if v is not None else NAN

    return {
        "achieved": s.get("requestsPerSec") or 0.0,
        "n": n,
        "ok_pct": 100.0 * ok2xx / (n + errors) if n + errors else 0.0,
        "non2xx": n - ok2xx,
        "errors": errors,
        "p50": pct("p50"),
        "p99": pct("p99"),
        "p999": pct("p99.9"),
    }


def vigil_counts(field):
    """vigil's analysis counters over the window ("captures=..,dropped=..,..."), or None."""
    if not field or field == "-":
        return None
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in field.split(","))}


def vigil_txt(c):
    """The analysis counters as one cell: what vigil's analysis did with the window's traffic."""
    if not c or not c.get("captures"):
        return "-"
    txt = f"{c['captures']:,} captures, {c['decoded']:,} rows decoded"
    if c.get("logged") or c.get("log_dropped"):
        txt += f", {c['logged']:,} logged"
    if c.get("mirrored") or c.get("not_mirrored"):
        txt += f", {c['mirrored']:,} mirrored"
    lost = [f"{c[k]:,} {what}" for k, what in (("dropped", "captures dropped"),
                                               ("log_dropped", "log rows dropped"),
                                               ("not_mirrored", "mirrors not sent")) if c.get(k)]
    return txt + ("; **" + ", ".join(lost) + "**" if lost else "")


def held_why(o, rate, hold, p99_ms):
    """Why an oha run did not hold `rate` (empty: it held)."""
    why = []
    if o["achieved"] < hold * rate:
        why.append(f"achieved {o['achieved']:.0f} req/s < {hold:g} x {rate}")
    if o["non2xx"] or o["errors"]:
        why.append(f"{o['non2xx']} non-2xx, {o['errors']} errors")
    if not ok(o["p99"]):
        why.append("no response")
    elif o["p99"] > p99_ms * 1000:
        why.append(f"p99 {o['p99'] / 1000:.1f} ms > {p99_ms:g} ms")
    return why


def load(raw, hz, hold, p99_ms):
    rows = []
    with open(raw) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            scenario = r.get("scenario") or "steady"
            first = oha(r["json"])
            spike = oha(r["json2"]) if r.get("json2") not in (None, "", "-") else None
            n = first["n"] + (spike["n"] if spike else 0)
            k = 1000.0 / hz  # ms per tick

            def per_k(ticks):
                return ticks * k / (n / 1000.0) if n else NAN

            direct = r["target"] == "direct"
            peak = r.get("peak_rss_kib") or "-"
            x = dict(first)
            x.update({
                "scenario": scenario,
                "round": int(r["round"]),
                "rows": r.get("rows") or "kib",
                "rate": int(r["rate"]),
                "extra": int(r.get("extra") or 0),
                "target": r["target"],
                "spike": spike,
                "n_all": n,
                "cpu": None if direct else per_k(int(r["proxy_ticks"])),
                "cpu_user": None if direct else per_k(int(r.get("proxy_user_ticks", 0) or 0)),
                "cpu_sys": None if direct else per_k(int(r.get("proxy_sys_ticks", 0) or 0)),
                "up_cpu": per_k(int(r["upstream_ticks"])),
                "oha_cpu": per_k(int(r["oha_ticks"])),
                "busy_pct": 100.0 * int(r["busy_ticks"]) / max(1, int(r["total_ticks"])),
                # busy ticks not accounted for by the proxy, the model servers or oha: someone
                # else's load
                "other": max(0, int(r["busy_ticks"]) - int(r["proxy_ticks"]) - int(r["upstream_ticks"])
                             - int(r["oha_ticks"])) / hz / float(r["wall_s"]),
                "peak_mib": None if direct or peak == "-" else int(peak) / 1024.0,
                "rss_reset": (r.get("rss_reset") or "1") == "1",
                "vigil": vigil_counts(r.get("vigil")),
                "attempts": int(r["attempts"]),
            })
            if scenario == "ramp":
                x["why"] = held_why(x, x["rate"], hold, p99_ms)
                x["held"] = not x["why"]
            rows.append(x)
    base = {(x["scenario"], x["rows"], x["round"], x["rate"]): x for x in rows if x["target"] == "direct"}
    for x in rows:
        b = base.get((x["scenario"], x["rows"], x["round"], x["rate"]))
        for q in ("p50", "p99", "p999"):
            x["add_" + q] = x[q] - b[q] if b else NAN
            if x["spike"]:
                x["spike"]["add_" + q] = (x["spike"][q] - b["spike"][q]
                                          if b and b["spike"] else NAN)
    return rows


def ok(v):
    return v is not None and v == v


def us(v, signed=False):
    if not ok(v):
        return "n/a"
    return f"{v:+.0f}" if signed else f"{v:.0f}"


def ms(v):
    return f"{v:.1f}" if ok(v) else "n/a"


def mib(v):
    return f"{v:.1f}" if ok(v) else "-"


def med(vals):
    vals = [v for v in vals if ok(v)]
    return statistics.median(vals) if vals else NAN


def spread(vals, fmt, signed=False):
    """median, and the range when there is more than one value."""
    vals = [v for v in vals if ok(v)]
    if not vals:
        return "n/a"
    f = {"us": lambda v: us(v, signed), "ms": ms, "mib": mib, "int": lambda v: f"{v:,.0f}"}[fmt]
    m = statistics.median(vals)
    if len(vals) == 1:
        return f(m)
    return f"{f(m)} ({f(min(vals))}..{f(max(vals))})"


def target_key(t):
    order = ["direct", "nginx", "haproxy"]
    return (order.index(t) if t in order else 3, t)


def rows_key(r):
    return (0, 0) if r == "kib" else (1, int(r))


def rows_label(r):
    return "1 KiB (1 row, padded)" if r == "kib" else f"{r} row{'s' if r != '1' else ''}"


def per_core(cpu):
    """requests per second per core-second of the proxy, from CPU ms per 1,000 requests:
    1000 / cpu thousand requests, i.e. 1e6 / cpu requests."""
    return 1e6 / cpu if ok(cpu) and cpu > 0 else NAN


def steady(rows, meta, w):
    keys = sorted({(x["rows"], x["rate"]) for x in rows}, key=lambda k: (rows_key(k[0]), k[1]))
    targets = sorted({x["target"] for x in rows}, key=target_key)
    rounds = sorted({x["round"] for x in rows})
    by = defaultdict(list)
    for x in rows:
        by[(x["rows"], x["rate"], x["target"])].append(x)

    w(f"#### Steady: median of {len(rounds)} round(s), range in brackets")
    w("")
    w("| target | payload | rate | achieved req/s | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 "
      "| CPU ms / 1k req | of which user / sys | peak RSS MiB | success |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r, rate in keys:
        for t in targets:
            xs = by.get((r, rate, t))
            if not xs:
                continue

            def g(k):
                return [x[k] for x in xs]

            row = (f"| {t} | {r} | {rate} | {med(g('achieved')):.0f} | {spread(g('p50'), 'us')} "
                   f"| {spread(g('p99'), 'us')} | {spread(g('p999'), 'us')} ")
            if t == "direct":
                row += "| - | - | - | - | - | - "
            else:
                row += (f"| {spread(g('add_p50'), 'us', True)} | {spread(g('add_p99'), 'us', True)} "
                        f"| {spread(g('add_p999'), 'us', True)} | {spread(g('cpu'), 'ms')} "
                        f"| {ms(med(g('cpu_user')))} / {ms(med(g('cpu_sys')))} "
                        f"| {spread(g('peak_mib'), 'mib')} ")
            w(row + f"| {min(g('ok_pct')):.2f}% |")
    w("")

    others = [t for t in targets if t.startswith("vigil") or t == "haproxy"]
    if "nginx" not in targets or not others:
        return
    w("#### Each proxy against nginx, same payload, rate and round (median over rounds; each round in "
      "brackets)")
    w("")
    w("CPU ratio = proxy CPU per request / nginx CPU per request. Added-p99 ratio = the proxy's added p99 / "
      "nginx's added p99, shown only when nginx's is at least 50 µs (a ratio of two differences near "
      "zero is noise). p99 gap = proxy p99 - nginx p99, the same comparison without the direct run. "
      "RSS ratio = peak RSS / nginx's (master + worker).")
    w("")
    w("| proxy | payload | rate | CPU ratio | added-p99 ratio | p99 gap, µs | p50 gap, µs | p99.9 gap, µs "
      "| RSS ratio |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for r, rate in keys:
        ng = {x["round"]: x for x in by.get((r, rate, "nginx"), [])}
        for v in others:
            vs = {x["round"]: x for x in by.get((r, rate, v), [])}
            common = sorted(set(ng) & set(vs))
            if not common:
                continue

            def each(f, fmt):
                vals = [f(vs[c], ng[c]) for c in common]
                m = med(vals)
                txt = fmt(m)
                if len(vals) > 1:
                    txt += " (" + ", ".join(fmt(x) for x in vals) + ")"
                return m, txt

            def ratio(a, b):
                return a / b if ok(a) and ok(b) and b else NAN

            cr, ctxt = each(lambda a, b: ratio(a["cpu"], b["cpu"]), lambda x: f"{x:.2f}" if ok(x) else "n/a")
            m_ng_add = med(ng[c]["add_p99"] for c in common)
            m_v_add = med(vs[c]["add_p99"] for c in common)
            ptxt = f"{m_v_add / m_ng_add:.2f}" if ok(m_ng_add) and m_ng_add >= 50 else "n/a"
            gap, gtxt = each(lambda a, b: a["p99"] - b["p99"], lambda x: us(x, True))
            _, g50 = each(lambda a, b: a["p50"] - b["p50"], lambda x: us(x, True))
            _, g999 = each(lambda a, b: a["p999"] - b["p999"], lambda x: us(x, True))
            _, rtxt = each(lambda a, b: ratio(a["peak_mib"], b["peak_mib"]),
                           lambda x: f"{x:.2f}" if ok(x) else "n/a")
            w(f"| {v} | {r} | {rate} | {ctxt} | {ptxt} | {gtxt} | {g50} | {g999} | {rtxt} |")
            if rate == 5000 and r == "kib" and v.startswith("vigil") and not v.startswith("vigil-notap"):
                # Round-to-round spread of direct's p99: what "within noise" means here.
                dp = [x["p99"] for x in by.get((r, rate, "direct"), [])]
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
        for v in verdicts:
            w(v)
        w("")


def ramp(rows, meta, w):
    rounds = sorted({x["round"] for x in rows})
    targets = sorted({x["target"] for x in rows}, key=target_key)
    ramp_max = int(meta.get("ramp_max", "0") or 0)
    w(f"#### Ramp: {len(rounds)} round(s)")
    w("")
    w(f"A step is held when oha achieved at least {meta.get('ramp_hold', '?')} of the offered rate, every "
      f"response was 2xx with no error, and p99 stayed at or under {meta.get('ramp_p99_ms', '?')} ms. A "
      "target leaves the ramp at its first step not held. **Throughput per core** = 1000 / (CPU ms per "
      "1,000 requests) thousand requests per second per core-second of the proxy's own CPU (shown in "
      "req/s). On a small box the "
      "load generator and the upstream share the cores, so the highest held rate is often the box's "
      "limit rather than the proxy's (compare direct's); throughput per core, from the proxy's measured "
      "CPU, is the figure that compares proxies.")
    w("")
    for r in sorted({x["rows"] for x in rows}, key=rows_key):
        xs_r = [x for x in rows if x["rows"] == r]
        by = defaultdict(list)
        for x in xs_r:
            by[(x["rate"], x["target"])].append(x)
        w(f"##### Ramp, {rows_label(r)}: each step, median over the rounds that reached it")
        w("")
        w("| rate | target | held | achieved req/s | p50 | p99 | p99.9 | added p99 | CPU ms / 1k req "
          "| per core, req/s | peak RSS MiB | not held because |")
        w("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for rate in sorted({x["rate"] for x in xs_r}):
            for t in targets:
                xs = sorted(by.get((rate, t), []), key=lambda x: x["round"])
                if not xs:
                    continue

                def g(k):
                    return [x[k] for x in xs]

                held = ", ".join("yes" if x["held"] else "no" for x in xs)
                why = "; ".join(f"round {x['round']}: " + ", ".join(x["why"]) if len(xs) > 1 else ", ".join(x["why"])
                                for x in xs if x["why"])
                direct = t == "direct"
                w(f"| {rate} | {t} | {held} | {med(g('achieved')):.0f} | {spread(g('p50'), 'us')} "
                  f"| {spread(g('p99'), 'us')} | {spread(g('p999'), 'us')} "
                  f"| {'-' if direct else spread(g('add_p99'), 'us', True)} "
                  f"| {'-' if direct else spread(g('cpu'), 'ms')} "
                  f"| {'-' if direct else spread([per_core(c) for c in g('cpu')], 'int')} "
                  f"| {'-' if direct else spread(g('peak_mib'), 'mib')} | {why or '-'} |")
        w("")

        # Per round and target: the last held step (steps stop at the first failure).
        last = {}
        for rd in rounds:
            for t in targets:
                steps = sorted((x for x in xs_r if x["round"] == rd and x["target"] == t), key=lambda x: x["rate"])
                if not steps:
                    continue
                held = [x for x in steps if x["held"]]
                last[(rd, t)] = {
                    "step": held[-1] if held else None,
                    "never_failed": all(x["held"] for x in steps) and steps[-1]["rate"] >= ramp_max,
                    "held_rates": {x["rate"]: x for x in held},
                }
        w(f"##### Saturation, {rows_label(r)}: highest held rate and throughput per core")
        w("")
        w("Per round in brackets. \"vs nginx\" is the ratio of throughput per core to nginx's in the same "
          "round (above 1: more requests per core-second than nginx). \"at the same rate\" takes the "
          "highest step both the proxy and nginx held, where each was offered the same load: CPU per "
          "request falls as the rate rises (fewer wake-ups per request), so this is the like-for-like "
          "figure when the two stopped at different steps.")
        w("")
        w("| target | highest held rate, req/s | CPU ms / 1k req there | per core, req/s | vs nginx "
          "| same rate as nginx, req/s | per core there | vs nginx there |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for t in targets:
            per = [(rd, last[(rd, t)]) for rd in rounds if (rd, t) in last]
            if not per:
                continue

            def rate_txt(L):
                if L["step"] is None:
                    return "none"
                return ("≥ " if L["never_failed"] else "") + f"{L['step']['rate']:,}"

            def fmt_each(vals, f):
                txt = f(med(vals)) if any(ok(v) for v in vals) else "n/a"
                if len(vals) > 1:
                    txt += " (" + ", ".join(f(v) if ok(v) else "n/a" for v in vals) + ")"
                return txt

            rates = [L["step"]["rate"] if L["step"] else NAN for _, L in per]
            m_rate = med(rates)
            rtxt = rate_txt(per[0][1]) if len(per) == 1 else (
                (f"{m_rate:,.0f}" if ok(m_rate) else "none") + " (" + ", ".join(rate_txt(L) for _, L in per) + ")")
            if t == "direct":
                w(f"| {t} | {rtxt} | - | - | - | - | - | - |")
                continue
            cpus = [L["step"]["cpu"] if L["step"] else NAN for _, L in per]
            cores = [per_core(c) for c in cpus]
            vs, same_rate, same_core, same_vs = [], [], [], []
            for (rd, L), core in zip(per, cores):
                N = last.get((rd, "nginx"))
                if not N or t == "nginx":
                    continue
                n_core = per_core(N["step"]["cpu"]) if N["step"] else NAN
                vs.append(core / n_core if ok(core) and ok(n_core) else NAN)
                both = sorted(set(L["held_rates"]) & set(N["held_rates"]))
                if both:
                    sr = both[-1]
                    a, b = per_core(L["held_rates"][sr]["cpu"]), per_core(N["held_rates"][sr]["cpu"])
                    same_rate.append(sr)
                    same_core.append(a)
                    same_vs.append(a / b if ok(a) and ok(b) else NAN)
                else:
                    same_rate.append(NAN)
                    same_core.append(NAN)
                    same_vs.append(NAN)
            ratio_f = (lambda v: f"{v:.2f}")
            int_f = (lambda v: f"{v:,.0f}")
            if t == "nginx":
                w(f"| {t} | {rtxt} | {fmt_each(cpus, ms)} | {fmt_each(cores, int_f)} | 1 | - | - | - |")
            else:
                w(f"| {t} | {rtxt} | {fmt_each(cpus, ms)} | {fmt_each(cores, int_f)} "
                  f"| {fmt_each(vs, ratio_f) if vs else 'n/a'} | {fmt_each(same_rate, int_f) if vs else 'n/a'} "
                  f"| {fmt_each(same_core, int_f) if vs else 'n/a'} | {fmt_each(same_vs, ratio_f) if vs else 'n/a'} |")
        w("")


def spike(rows, meta, w):
    rounds = sorted({x["round"] for x in rows})
    targets = sorted({x["target"] for x in rows}, key=target_key)
    w(f"#### Spike: median of {len(rounds)} round(s), range in brackets")
    w("")
    w(f"{meta.get('spike', '')}. **baseline**: the oha that runs for the whole window (its "
      "percentiles include the requests sent during the spike); **spike**: the second oha, whose "
      "requests all fall in the spike and which opens its connections when the spike starts. Added = "
      "minus direct's, same oha, payload and round. CPU and peak RSS: the proxy over the whole window.")
    w("")
    w("| target | payload | baseline req/s | baseline p50 | p99 | p99.9 | added p99 | non-2xx / errors "
      "| spike req/s | spike p50 | p99 | p99.9 | added p99 | non-2xx / errors | CPU ms / 1k req "
      "| peak RSS MiB |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: | ---: |")
    by = defaultdict(list)
    for x in rows:
        by[(x["rows"], x["target"])].append(x)
    for r in sorted({x["rows"] for x in rows}, key=rows_key):
        for t in targets:
            xs = by.get((r, t))
            if not xs:
                continue
            ss = [x["spike"] for x in xs if x["spike"]]
            direct = t == "direct"

            def g(src, k):
                return [x[k] for x in src]

            def errs(src):
                return f"{sum(x['non2xx'] for x in src)} / {sum(x['errors'] for x in src)}"

            w(f"| {t} | {r} | {med(g(xs, 'achieved')):.0f} | {spread(g(xs, 'p50'), 'us')} "
              f"| {spread(g(xs, 'p99'), 'us')} | {spread(g(xs, 'p999'), 'us')} "
              f"| {'-' if direct else spread(g(xs, 'add_p99'), 'us', True)} | {errs(xs)} "
              f"| {med(g(ss, 'achieved')):.0f} | {spread(g(ss, 'p50'), 'us')} "
              f"| {spread(g(ss, 'p99'), 'us')} | {spread(g(ss, 'p999'), 'us')} "
              f"| {'-' if direct else spread(g(ss, 'add_p99'), 'us', True)} | {errs(ss)} "
              f"| {'-' if direct else spread(g(xs, 'cpu'), 'ms')} "
              f"| {'-' if direct else spread(g(xs, 'peak_mib'), 'mib')} |")
    w("")


def shed_note(rows, w):
    """Say where vigil shed analysis work: there, the client was served but not everything was
    analysed, logged or mirrored."""
    lines = []
    for x in sorted(rows, key=lambda x: (rows_key(x["rows"]), x["rate"], target_key(x["target"]), x["round"])):
        c = x["vigil"]
        if not c or not any(c.get(k) for k in ("dropped", "log_dropped", "not_mirrored")):
            continue
        parts = []
        if c.get("dropped"):
            parts.append(f"{c['dropped']:,} of {c['captures']:,} captures dropped "
                         f"({100.0 * c['dropped'] / max(1, c['captures']):.1f}%)")
        if c.get("log_dropped"):
            parts.append(f"{c['log_dropped']:,} prediction-log rows dropped")
        if c.get("not_mirrored"):
            parts.append(f"{c['not_mirrored']:,} mirrors not sent")
        rate = f"{x['rate']}" + (f" +{x['extra']}" if x["extra"] else "")
        lines.append(f"- {x['target']}, payload {x['rows']}, {rate} req/s, round {x['round']}: " + ", ".join(parts))
    if lines:
        w("vigil shed analysis work (the clients were answered; these were not analysed, logged or "
          "mirrored in full):")
        w("")
        out = lines[:12]
        if len(lines) > 12:
            out.append(f"- ... and {len(lines) - 12} more measurements (every measurement, below)")
        for line in out:
            w(line)
        w("")


def every(rows, meta, w):
    w("#### Every measurement")
    w("")
    w("| scenario | payload | round | rate | target | achieved req/s | responses | non-2xx / errors | p50 | p99 "
      "| p99.9 | added p99 | proxy CPU ms / 1k (user + sys) | model servers CPU ms / 1k | oha CPU ms / 1k "
      "| peak RSS MiB | vigil's analysis | machine busy | other load | attempts |")
    w("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: | --- | ---: | ---: | ---: |")
    sc_order = {"steady": 0, "ramp": 1, "spike": 2}
    no_reset = False
    for x in sorted(rows, key=lambda x: (sc_order.get(x["scenario"], 9), rows_key(x["rows"]), x["rate"],
                                         target_key(x["target"]), x["round"])):
        cpu = "-" if x["cpu"] is None else f"{ms(x['cpu'])} ({ms(x['cpu_user'])} + {ms(x['cpu_sys'])})"
        peak = mib(x["peak_mib"]) + ("" if x["rss_reset"] or x["peak_mib"] is None else " *")
        no_reset |= not x["rss_reset"] and x["peak_mib"] is not None
        direct = x["target"] == "direct"
        w(f"| {x['scenario']} | {x['rows']} | {x['round']} | {x['rate']} | {x['target']} | {x['achieved']:.0f} "
          f"| {x['n']} | {x['non2xx']} / {x['errors']} | {us(x['p50'])} | {us(x['p99'])} | {us(x['p999'])} "
          f"| {'-' if direct else us(x['add_p99'], True)} "
          f"| {cpu} | {ms(x['up_cpu'])} | {ms(x['oha_cpu'])} | {peak} | {vigil_txt(x['vigil'])} "
          f"| {x['busy_pct']:.0f}% | {x['other']:.2f} | {x['attempts']} |")
        s = x["spike"]
        if s:
            w(f"| spike: the second oha | {x['rows']} | {x['round']} | +{x['extra']} | {x['target']} "
              f"| {s['achieved']:.0f} | {s['n']} | {s['non2xx']} / {s['errors']} | {us(s['p50'])} "
              f"| {us(s['p99'])} | {us(s['p999'])} | {'-' if direct else us(s['add_p99'], True)} "
              "| (above) | | | | | | | |")
    w("")
    w("machine busy: share of all CPUs busy (user+system+irq+softirq+steal, /proc/stat) during the "
      "measured window. other load: busy CPU not accounted for by the proxy, the model servers (upstream "
      "and candidate) or oha, in cores (kernel threads, softirq charged to no process, other users of the "
      f"box); a measurement above {meta.get('other_max', '?')} cores was repeated, attempts counts the "
      "tries. CPU per 1k: over all responses of the window (a spike's two oha together). peak RSS: "
      "VmHWM of the proxy's processes (summed: nginx master + worker), reset before the measured window. "
      "vigil's analysis: from its /metrics over the window, rows decoded (drift), rows written to the "
      "prediction log and mirror requests sent (to the candidate, and the noise-floor copies to the live "
      "version), and in bold what it shed to keep the client's path free: "
      "captures dropped (analysis queue full), log rows dropped, mirrors not sent (shadow budgets). "
      "Counters are read just after the warmup and just after oha ends, so work queued before either "
      "(the log flushes every 200 ms) counts in the window after it.")
    if no_reset:
        w("\\* the reset of the high-water mark was refused (/proc/PID/clear_refs): the peak since the "
          "process started.")


def held_main(argv):
    ap = argparse.ArgumentParser(prog="summarize.py held")
    ap.add_argument("json")
    ap.add_argument("rate", type=int)
    ap.add_argument("--hold", type=float, default=0.97)
    ap.add_argument("--p99-ms", type=float, default=20.0)
    a = ap.parse_args(argv)
    why = held_why(oha(a.json), a.rate, a.hold, a.p99_ms)
    if why:
        print(", ".join(why))
        sys.exit(1)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "held":
        return held_main(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--hz", type=int, default=100)
    ap.add_argument("--command", default="")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    meta = dict(m.split("=", 1) for m in a.meta)
    rows = load(a.raw, a.hz, float(meta.get("ramp_hold", 0.97)), float(meta.get("ramp_p99_ms", 20)))
    scenarios = [s for s in ("steady", "ramp", "spike") if any(x["scenario"] == s for x in rows)]
    out = []
    w = out.append

    title = "Proxy overhead run" if scenarios == ["steady"] else "Load run (" + ", ".join(scenarios) + ")"
    w(f"### {title}, {meta.get('date', '')}")
    w("")
    w(f"Command: `{a.command}`")
    w("")
    for key in ("machine", "vigil", "nginx", "haproxy", "oha", "load", "steady", "ramp", "spike", "upstream"):
        if key in meta and (key not in ("steady", "ramp", "spike") or key in scenarios):
            w(f"- {key}: {meta[key]}")
    w("- latencies in µs; added = target minus direct, same scenario, payload, rate and round; CPU = "
      "utime+stime of the proxy's processes (nginx: master + worker; haproxy: its process; vigil: all "
      "threads) per 1,000 responses, from /proc/PID/stat; peak RSS = VmHWM of the same processes during "
      "the measured window")
    w("")
    for s, f in (("steady", steady), ("ramp", ramp), ("spike", spike)):
        if s in scenarios:
            f([x for x in rows if x["scenario"] == s], meta, w)
            shed_note([x for x in rows if x["scenario"] == s], w)
    every(rows, meta, w)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
