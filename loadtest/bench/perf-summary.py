#!/usr/bin/env python3
"""Summarises `perf script` output (with DWARF call chains and inlined frames) of a proxy run.

Usage: perf script -i perf.data -F comm,tid,time,ip,sym,dso | perf-summary.py [--us-per-sample X]

Prints: self time by function (the leaf's real, non-inlined symbol), inclusive time of the
frames that matter for the data path (a sample counts for a row when any frame of its stack
matches), and samples per thread. With --us-per-sample (CPU µs of the process per sample, i.e.
CPU time / samples) and --requests, the rows also show µs of CPU per request.
"""
import argparse
import re
import sys
from collections import Counter

# (label, regex on any frame of the stack). Frames are matched with their generic argument lists
# removed, except for a regex starting with "raw:", matched on the frame as perf names it.
# Order is the order printed.
INCLUSIVE = [
    ("kernel (syscalls, TCP over loopback, scheduler)", r"^\[k\] "),
    ("  sendmsg / writev (write to sockets)", r"\b(__sys_sendmsg|do_writev|vfs_writev|tcp_sendmsg)\b"),
    ("  recvfrom / read (read from sockets)", r"\b(__sys_recvfrom|ksys_read|tcp_recvmsg)\b"),
    ("  epoll_wait", r"\bdo_epoll_wait\b|\bep_poll\b"),
    ("  futex (thread wake / park)", r"\bdo_futex\b|\bfutex_wake\b|\bfutex_wait\b"),
    ("  context switch (schedule / finish_task_switch)", r"\bfinish_task_switch|\b__schedule\b"),
    ("tokio: worker park (idle wait, includes its epoll_wait) / unpark", r"tokio::runtime::scheduler::multi_thread::(park|idle)|Parker|Unparker|unpark|park_timeout|park_internal"),
    ("tokio: I/O driver (epoll turn, readiness)", r"tokio::runtime::io::driver::Driver::turn|tokio::runtime::io::scheduled_io"),
    ("tokio: timers (sleep / timeout entries, not the park)", r"tokio::time::|tokio::runtime::time::(entry|wheel|source|handle)|process_at_time"),
    ("hyper server connection (client side of vigil)", r"raw:hyper::proto::h1::dispatch::Server<"),
    ("  h1 server parse (request head)", r"hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::parse"),
    ("  h1 server encode (response head)", r"hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode"),
    ("hyper client connection task (upstream side)", r"raw:hyper::proto::h1::dispatch::Client<"),
    ("  h1 client parse (response head)", r"hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::parse"),
    ("  h1 client encode (request head)", r"hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::encode"),
    ("hyper-util legacy Client: send_request / pool", r"hyper_util::client::legacy::client::Client|hyper_util::client::legacy::pool"),
    ("  pool checkout / idle bookkeeping", r"hyper_util::client::legacy::pool"),
    ("vigil::proxy::forward (whole request path, excl. upstream wait)", r"vigil::proxy::forward|<vigil::proxy::Proxy as tower_service::Service>"),
    ("  vigil::proxy::send", r"vigil::proxy::send"),
    ("  request id (headers::new_request_id)", r"vigil::proxy::headers::new_request_id"),
    ("  hop-by-hop strip (headers::strip_hop_by_hop)", r"vigil::proxy::headers::strip_hop_by_hop"),
    ("  routes load / pick", r"vigil::routes|arc_swap"),
    ("  UpstreamUrl::uri_for", r"uri_for"),
    ("  tokio::time::timeout (response_timeout)", r"tokio::time::timeout"),
    ("admission layer (vigil::proxy::admission)", r"<vigil::proxy::admission::Admission as tower_service::Service>|vigil::proxy::admission::InFlightGuard"),
    ("body tap: RequestBody::poll_frame", r"<vigil::proxy::body::RequestBody as http_body::Body>"),
    ("body tap: ResponseBody::poll_frame", r"<vigil::proxy::body::ResponseBody as http_body::Body>"),
    ("  ResponseTap::finish (build + offer capture)", r"vigil::proxy::body::ResponseTap"),
    ("  CaptureSink::offer (mpsc try_send)", r"vigil::capture::CaptureSink::offer"),
    ("capture consumer task (run_consumer)", r"vigil::capture::run_consumer"),
    ("  LatencyBook::record (HDR + metrics histograms)", r"vigil::capture::latency::LatencyBook::record"),
    ("dropping a Capture (free bodies, strings)", r"raw:^drop_in_place<vigil::capture::Capture>"),
    ("metrics: counters / gauges / histograms (metrics crate)", r"metrics::|metrics_util::|metrics_exporter_prometheus::recorder"),
    ("prometheus upkeep (run_upkeep, every 5 s)", r"run_upkeep|PrometheusHandle::run_upkeep|Inner::drain|metrics_util::.*Bucket"),
    ("per-version metrics (VersionMetrics::request)", r"vigil::routes::.*metrics|VersionMetrics"),
    ("tracing (spans, events, filter)", r"\btracing::|tracing_core::|tracing_subscriber::"),
    ("HeaderMap operations (http crate)", r"http::header::map::"),
    ("malloc / free / realloc", r"\b(malloc|_int_malloc|_int_free|cfree|free|realloc|_int_realloc|tcache_get|__libc_malloc|__GI___libc_malloc|__libc_free)\b"),
    ("memcpy / memmove", r"__memmove|__memcpy|memcpy"),
]


def parse(stream):
    """Yields (comm, frames) per sample; frames are symbol strings, leaf first."""
    comm, frames = None, []
    for line in stream:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if not line.startswith(("\t", " ")):
            comm = line.split()[0]
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym = parts[1]
        if set(parts[0]) == {"f"}:  # the end-of-chain marker, ffffffffffffffff [unknown]
            continue
        kernel = parts[0].startswith("ffffffff")
        raw = ("[k] " if kernel else "") + sym
        frames.append((raw, strip_generics(raw)))
    if comm is not None:
        yield comm, frames


def strip_generics(sym):
    """Drops generic argument lists (`Foo<..>` -> `Foo`) so that a frame matches on what runs,
    not on the types it is instantiated with; keeps a qualified self (`<X as Trait>::f`)."""
    out, depth, stripping = [], 0, 0
    for i, ch in enumerate(sym):
        if ch == "<":
            prev = sym[i - 1] if i else " "
            if stripping or prev.isalnum() or prev in "_:>":
                stripping += 1
                continue
            out.append(ch)
            depth += 1
            continue
        if ch == ">" and stripping:
            stripping -= 1
            continue
        if stripping:
            continue
        out.append(ch)
    return "".join(out)


def real_symbol(frames):
    """The leaf's non-inlined function, as perf report names it."""
    for raw, f in frames:
        if not f.endswith("(inlined)"):
            return re.sub(r"\s+\([^)]*\)$", "", f)
    return re.sub(r"\s+\(inlined\)$", "", frames[0][1]) if frames else "?"


def short(sym, width=110):
    return sym if len(sym) <= width else sym[: width - 3] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--us-per-sample", type=float, default=0.0)
    ap.add_argument("--requests", type=int, default=0)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()

    samples = list(parse(sys.stdin))
    n = len(samples)
    if not n:
        print("no samples")
        return
    per_req = a.us_per_sample > 0 and a.requests > 0

    def cost(count):
        pct = 100.0 * count / n
        if per_req:
            return f"{pct:5.1f}%  {count * a.us_per_sample / a.requests:6.2f} µs/req"
        return f"{pct:5.1f}%"

    print(f"{n} samples" + (f", {a.us_per_sample:.0f} µs of CPU each, {a.requests} requests" if per_req else ""))
    print()
    print("## Self time by function (leaf, inlined frames folded into their function)")
    flat = Counter(real_symbol(f) for _, f in samples)
    for sym, c in flat.most_common(a.top):
        print(f"  {cost(c)}  {short(sym)}")
    print()
    print("## Inclusive time of data-path frames (a sample counts when any frame of its stack matches)")
    for label, rx in INCLUSIVE:
        which = 0 if rx.startswith("raw:") else 1
        rx = re.compile(rx[4:] if which == 0 else rx)
        c = sum(1 for _, f in samples if any(rx.search(x[which]) for x in f))
        print(f"  {cost(c)}  {label}")
    print()
    print("## Self time by crate, user space (the innermost frame that names a path)")
    crates = Counter()
    for _, f in samples:
        if not f or f[0][0].startswith("[k]"):
            continue
        crate = "?"
        for raw, x in f:
            m = re.match(r"<?([A-Za-z_][A-Za-z0-9_]*)::", x)
            if m:
                crate = m.group(1)
                break
            if re.match(r"(_int_|malloc|free|cfree|realloc|tcache|__libc_|__GI___libc)", x):
                crate = "libc malloc/free"
                break
            if re.match(r"__mem|memcpy|memmove|memset", x):
                crate = "libc mem*"
                break
            if re.match(r"ngx_", x):
                crate = "nginx"
                break
        crates[crate] += 1
    for crate, c in crates.most_common(15):
        print(f"  {cost(c)}  {crate}")
    print()
    print("## Samples by thread name")
    for comm, c in Counter(comm for comm, _ in samples).most_common():
        print(f"  {cost(c)}  {comm}")


if __name__ == "__main__":
    main()
