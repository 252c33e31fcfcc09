// vigil dashboard: polls the control plane's open GET routes every 2 s (the audit trail every
// 10 s), keeps the last 10 minutes of figures in a ring in this tab so the lines move, and draws
// them as hand-written SVG.
// Activate / roll back send the admin token typed in the header (kept in sessionStorage only,
// never in a URL) as `Authorization: Bearer <token>` and show the API's JSON error on failure.
// A panel whose route answers 404 or 503 with its own kind says "off" (the feature is disabled);
// a route this vigil does not have (404, kind "not_found") says "not available".
"use strict";

const POLL_MS = 2000;
const RING_MS = 10 * 60 * 1000;
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "vigil.adminToken";

/** One sample per poll: {t, traffic, errors, p50, p99, drift, perf, agree, cpu}. */
const ring = [];
/** The previous poll's request counters, for rates: {t, byVersion: {v: {total, errors}}}. */
let lastCounters = null;
/** The version whose drift, performance and importance are shown; null: the active one. */
let chosen = null;
let versionsView = null;
let polling = false;
/** An action finished during a poll: the next poll also reads the audit trail. */
let pendingForce = false;

// ---- small helpers -------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

/** An element with attributes (`text` sets textContent, `class` the class) and children. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = String(v);
    else if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  }
  return e;
}

function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  const d = digits === undefined ? 3 : digits;
  if (x !== 0 && Math.abs(x) < Math.pow(10, -d)) return x.toExponential(1);
  const t = x.toFixed(d);
  return t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t;
}
/** An axis label: three significant digits at most. */
function axis(v) {
  const a = Math.abs(v);
  return fmt(v, a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}
function pct(x) { return x === null || x === undefined ? "–" : fmt(100 * x, 1) + "%"; }
function bytes(b) {
  if (b === null || b === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return fmt(b, 1) + " " + units[i];
}
function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
}
function empty(tbody, cols, text) {
  tbody.replaceChildren(el("tr", {}, el("td", { colspan: cols, class: "empty", text })));
}

/** Sets a panel's state pill: live | off | na | error. */
function setState(panel, kind, text, reason) {
  why[panel] = reason || text;
  const s = $("state-" + panel);
  if (!s) return;
  s.className = "state " + kind;
  s.textContent = text;
  s.title = reason || "";
}

/**
 * Routes this vigil does not have (404, kind "not_found"): asked once per page load, since only a
 * restart with a newer binary adds them (and the browser logs every 404 it gets).
 */
const missing = new Map();

/** GET a JSON route: {status, body} (body null when not JSON); status 0 when unreachable. */
async function getJSON(path) {
  if (missing.has(path)) return missing.get(path);
  try {
    const res = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(10000) });
    const text = await res.text();
    let body = null;
    try { body = JSON.parse(text); } catch (_) { body = null; }
    const r = { status: res.status, body, text };
    if (res.status === 404 && body && body.kind === "not_found") missing.set(path, r);
    return r;
  } catch (e) {
    return { status: 0, body: null, text: String(e) };
  }
}

/**
 * Decides what a panel shows for an answer: true when it is a 200 to render; otherwise the pill
 * says "off" (the feature's own 404/503), "not available" (no such route here) or the error.
 */
function usable(panel, r) {
  if (r.status === 200 && r.body) { setState(panel, "live", "live"); return true; }
  const kind = r.body && r.body.kind;
  const message = (r.body && r.body.error) || r.text || "";
  if (r.status === 404 && (kind === "not_found" || !kind)) setState(panel, "na", "not available", "not available: this vigil has no such route");
  else if (r.status === 404 || r.status === 503) setState(panel, "off", "off", "off: " + message);
  else if (r.status === 0) setState(panel, "error", "unreachable", "the control plane is unreachable");
  else setState(panel, "error", "error " + r.status, r.status + " " + (kind || "") + ": " + message);
  return false;
}

/** Why a panel shows nothing (set by `usable`). */
const why = {};

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split("\n")) {
    if (!l || l[0] === "#") continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const lm of m[2].matchAll(label)) labels[lm[1]] = lm[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// ---- charts ---------------------------------------------------------------------------------

const W = 560, H = 180, PAD = { l: 58, r: 10, t: 8, b: 20 };

/** A stable colour class per name (versions keep theirs across polls). */
const colours = new Map();
function colour(name) {
  if (!colours.has(name)) colours.set(name, "s" + (colours.size % 6));
  return colours.get(name);
}

/**
 * A time-series line chart into `box`: series [{name, cls, values: [[t, y|null], ...]}] over the
 * ring's span. Each series' path carries data-points (its count of non-null points).
 * opts: {unit, min, max, limit (a dashed horizontal line)}.
 */
function lineChart(box, series, opts) {
  opts = opts || {};
  // The x axis spans what the ring holds (at least a minute, at most its 10), so a fresh tab's
  // first seconds are readable too.
  const now = Date.now();
  const span = Math.min(RING_MS, Math.max(60 * 1000, ring.length ? now - ring[0].t : 0));
  const t0 = now - span;
  let lo = opts.min !== undefined ? opts.min : Infinity, hi = opts.max !== undefined ? opts.max : -Infinity;
  for (const s of series) for (const [, y] of s.values) if (y !== null && Number.isFinite(y)) {
    if (opts.min === undefined) lo = Math.min(lo, y);
    if (opts.max === undefined || opts.grow) hi = Math.max(hi, y);
  }
  if (opts.limit !== undefined) hi = Math.max(hi, opts.limit * 1.1);
  if (!Number.isFinite(lo)) lo = 0;
  if (!Number.isFinite(hi) || hi <= lo) hi = lo + 1;
  const x = (t) => PAD.l + ((t - t0) / span) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - ((v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  for (let i = 0; i <= 3; i++) {
    const v = lo + ((hi - lo) * i) / 3, yy = y(v);
    svg.append(svgEl("line", { class: i === 0 ? "axis" : "grid", x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy }));
    svg.append(svgEl("text", { x: PAD.l - 4, y: yy + 3, "text-anchor": "end", text: opts.pct ? pct(v) : axis(v) + (opts.unit || "") }));
  }
  const ago = (ms) => (ms >= 60000 ? "-" + fmt(ms / 60000, 1) + " min" : "-" + Math.round(ms / 1000) + " s");
  for (const [label, t, anchor] of [[ago(span), t0, "start"], [ago(span / 2), t0 + span / 2, "middle"], ["now", now, "end"]]) {
    svg.append(svgEl("text", { x: x(t), y: H - 5, "text-anchor": anchor, text: label }));
  }
  if (opts.limit !== undefined) {
    svg.append(svgEl("line", { class: "limit", x1: PAD.l, x2: W - PAD.r, y1: y(opts.limit), y2: y(opts.limit) }));
  }
  const legend = el("div", { class: "legend" });
  for (const s of series) {
    let d = "", points = 0, pen = false, last = null;
    for (const [t, v] of s.values) {
      if (v === null || !Number.isFinite(v) || t < t0) { pen = false; continue; }
      const vv = Math.min(Math.max(v, lo), hi);
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(vv).toFixed(1);
      pen = true; points++; last = [t, vv];
    }
    // A single point draws no line: mark it with a dot so the series is visible from the start.
    const path = svgEl("path", { class: "line " + s.cls, d: d || "M0 0", "data-series": s.name, "data-points": points });
    if (!d) path.setAttribute("visibility", "hidden");
    svg.append(path);
    if (last) svg.append(svgEl("circle", { class: "dot " + s.cls.replace("dashed", ""), cx: x(last[0]), cy: y(last[1]), r: 2.5 }));
    legend.append(el("span", {}, el("i", { class: s.cls }), s.name));
  }
  box.replaceChildren(svg, legend);
}

/** Horizontal bars [{name, value, bad}] with a dashed limit line; values capped at `max`. */
function barChart(box, bars, opts) {
  opts = opts || {};
  const rowH = 18, h = PAD.t + rowH * Math.max(bars.length, 1) + 16, left = 110;
  let hi = opts.limit !== undefined ? opts.limit * 1.5 : 0;
  for (const b of bars) if (Number.isFinite(b.value)) hi = Math.max(hi, b.value);
  if (opts.max !== undefined) hi = Math.min(hi, opts.max);
  if (!(hi > 0)) hi = 1;
  const x = (v) => left + (Math.min(Math.max(v, 0), hi) / hi) * (W - left - PAD.r - 40);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${h}`, role: "img" });
  bars.forEach((b, i) => {
    const yy = PAD.t + i * rowH;
    svg.append(svgEl("text", { x: left - 6, y: yy + 12, "text-anchor": "end", text: b.name }));
    const v = Number.isFinite(b.value) ? b.value : 0;
    svg.append(svgEl("rect", { class: "bar" + (b.bad ? " bad" : ""), x: left, y: yy + 2, width: Math.max(x(v) - left, 1), height: rowH - 6, "data-bar": b.name }));
    svg.append(svgEl("text", { x: x(v) + 4, y: yy + 12, text: b.label !== undefined ? b.label : fmt(b.value) }));
  });
  if (opts.limit !== undefined) {
    svg.append(svgEl("line", { class: "limit", x1: x(opts.limit), x2: x(opts.limit), y1: PAD.t, y2: h - 14 }));
    svg.append(svgEl("text", { x: x(opts.limit), y: h - 3, "text-anchor": "middle", text: opts.limitLabel || fmt(opts.limit) }));
  }
  box.replaceChildren(svg);
}

/** The ring's values of `pick(sample)` as [[t, y]]. */
function seriesOf(pick) {
  return ring.map((s) => { const v = pick(s); return [s.t, v === undefined ? null : v]; });
}

/** Names appearing under `key` anywhere in the ring, sorted. */
function namesIn(key, sub) {
  const names = new Set();
  for (const s of ring) {
    const o = sub ? (s[key] || {})[sub] : s[key];
    for (const k of Object.keys(o || {})) names.add(k);
  }
  return [...names].sort();
}

// ---- panels ---------------------------------------------------------------------------------

function renderVersions(r) {
  const body = $("versions-body");
  if (!usable("versions", r)) { empty(body, 6, why.versions); return; }
  const v = r.body;
  versionsView = v;
  $("active").textContent = v.active;
  for (const x of v.versions) colour(x.name);
  const rows = v.versions.map((x) => {
    const state = x.active ? el("span", { class: "badge active", text: "active" })
      : x.name === v.previous ? el("span", { class: "badge previous", text: "previous" }) : "";
    const button = x.active ? "" : el("button", { "data-testid": "activate-" + x.name, "data-version": x.name, text: "Activate" });
    if (button) button.addEventListener("click", () => act("POST", "/admin/versions/" + encodeURIComponent(x.name) + "/activate", "activate " + x.name));
    return el("tr", { "data-testid": "version-row-" + x.name, "data-active": x.active ? "true" : "false" },
      el("td", {}, el("b", { text: x.name })),
      el("td", { class: "url", text: x.url, title: x.url }),
      el("td", { class: "num", text: x.weight }),
      el("td", { class: "num", text: x.traffic_share + "%" }),
      el("td", {}, state),
      el("td", {}, button));
  });
  body.replaceChildren(...rows);
  $("rollback").disabled = false;
  $("rollback").title = v.previous ? "back to " + v.previous : "no previous version to go back to";
  // The version selector: the active one unless the user picked another that still exists.
  const sel = $("version-select");
  const names = v.versions.map((x) => x.name);
  if (sel.options.length !== names.length + 1 || names.some((n, i) => sel.options[i + 1].value !== n)) {
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "", text: "active (" + v.active + ")" }), ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = names.includes(keep) ? keep : "";
  } else {
    sel.options[0].textContent = "active (" + v.active + ")";
  }
}

function shownVersion() {
  return chosen || (versionsView && versionsView.active) || null;
}

/** Request and error rates per version from the counters' change since the last poll. */
function counterRates(metricsText, t) {
  const by = {};
  for (const m of parseMetrics(metricsText)) {
    if (m.name !== "vigil_requests_total" || !m.labels.version) continue;
    const v = (by[m.labels.version] = by[m.labels.version] || { total: 0, errors: 0 });
    v.total += m.value;
    if (Number(m.labels.code) >= 500) v.errors += m.value;
  }
  const out = { traffic: {}, errors: {} };
  if (lastCounters) {
    const dt = (t - lastCounters.t) / 1000;
    for (const [v, c] of Object.entries(by)) {
      const p = lastCounters.byVersion[v] || { total: 0, errors: 0 };
      const dn = c.total - p.total, de = c.errors - p.errors;
      if (dt <= 0 || dn < 0 || de < 0) continue; // a restart reset the counters
      out.traffic[v] = dn / dt;
      out.errors[v] = dn > 0 ? de / dn : null;
    }
  }
  lastCounters = { t, byVersion: by };
  return out;
}

function renderTrafficAndErrors(r, sample) {
  if (r.status !== 200) {
    usable("traffic", r); usable("errors", r);
    return;
  }
  setState("traffic", "live", "live"); setState("errors", "live", "live");
  const rates = counterRates(r.text, sample.t);
  sample.traffic = rates.traffic;
  sample.errors = rates.errors;
}

function drawTrafficAndErrors() {
  const names = namesIn("traffic");
  lineChart($("chart-traffic"), names.map((v) => ({ name: v, cls: colour(v), values: seriesOf((s) => (s.traffic || {})[v]) })), { min: 0, unit: "" });
  lineChart($("chart-errors"), names.map((v) => ({ name: v, cls: colour(v), values: seriesOf((s) => (s.errors || {})[v]) })), { min: 0, max: 0.05, grow: true, pct: true });
}

function renderLatency(r, sample) {
  if (!usable("latency", r)) return;
  sample.p50 = {}; sample.p99 = {};
  for (const [v, l] of Object.entries(r.body.versions || {})) {
    sample.p50[v] = l.total ? l.total.p50 : null;
    sample.p99[v] = l.total ? l.total.p99 : null;
  }
}

function drawLatency() {
  const names = [...new Set([...namesIn("p50"), ...namesIn("p99")])].sort();
  const series = [];
  for (const v of names) {
    series.push({ name: v + " p50", cls: colour(v), values: seriesOf((s) => (s.p50 || {})[v]) });
    series.push({ name: v + " p99", cls: colour(v) + " dashed", values: seriesOf((s) => (s.p99 || {})[v]) });
  }
  lineChart($("chart-latency"), series, { min: 0, unit: " ms" });
}

/** How far past its threshold a column is: ≥ 1 is drift, for distances and p-value tests alike. */
function driftRatio(f) {
  if (!f || !(f.threshold > 0)) return null;
  if (f.p_value !== null && f.p_value !== undefined) return Math.min(f.threshold / Math.max(f.p_value, 1e-9), 10);
  if (f.statistic === null || f.statistic === undefined) return null;
  return f.statistic / f.threshold;
}

function renderDrift(r, sample) {
  const body = $("drift-body");
  const v = shownVersion();
  $("drift-version").textContent = v ? "version " + v : "";
  if (!usable("drift", r)) {
    empty(body, 5, why.drift); $("drift-summary").textContent = "";
    $("chart-drift").replaceChildren(); $("drift-bars").replaceChildren();
    return;
  }
  const d = r.body;
  sample.drift = {};
  for (const [ver, rep] of Object.entries(d.versions || {})) {
    sample.drift[ver] = {};
    for (const f of [...(rep.features || []), ...(rep.predictions || [])]) sample.drift[ver][f.name] = driftRatio(f);
  }
  const rep = (d.versions || {})[v];
  if (d.status && d.status !== "ok") setState("drift", "live", d.status);
  if (!rep) {
    empty(body, 5, d.status !== "ok" ? "status: " + d.status : "no analysed traffic for " + v + " yet");
    $("drift-summary").textContent = ""; $("drift-bars").replaceChildren();
    return;
  }
  const cols = [...(rep.features || []), ...(rep.predictions || [])];
  body.replaceChildren(...cols.map((f) => el("tr", { class: f.drift ? "drifted" : "", "data-testid": "drift-row-" + f.name, "data-drifted": f.drift ? "true" : "false" },
    el("td", { text: f.name }),
    el("td", { text: f.method }),
    el("td", { class: "num", text: f.p_value !== null && f.p_value !== undefined ? "p=" + fmt(f.p_value) : fmt(f.statistic) }),
    el("td", { class: "num", text: fmt(f.threshold) }),
    el("td", { text: f.drift ? "drifted" : f.status ? f.status.replace(/_/g, " ") : "ok" }))));
  barChart($("drift-bars"), cols.map((f) => ({ name: f.name, value: driftRatio(f), bad: f.drift, label: fmt(driftRatio(f), 2) })), { limit: 1, max: 4, limitLabel: "threshold" });
  const ds = rep.dataset || {}, cs = rep.covariate_shift;
  const parts = [
    !rep.window ? "window –" : rep.window.kind === "time"
      ? "window " + rep.window.records + " records in the last " + fmt(rep.window.size, 0) + " s"
      : "window " + rep.window.records + " / " + fmt(rep.window.size, 0) + " records",
    "dataset drift share " + (ds.share === null || ds.share === undefined ? "– (window filling)" : pct(ds.share)) + " of " + ds.features + " (drift at " + pct(ds.drift_share) + ")" + (ds.drift ? " DRIFTED" : ""),
    cs ? "covariate shift " + fmt(cs.score) + " vs " + fmt(cs.threshold) + (cs.drift ? " DRIFTED" : "") : "covariate shift –",
  ];
  $("drift-summary").textContent = parts.join(" · ");
  $("drift-summary").className = ds.drift || (cs && cs.drift) ? "bad" : "";
}

function drawDrift() {
  const v = shownVersion();
  if (!v) return;
  if ($("state-drift").classList.contains("off") || $("state-drift").classList.contains("na")) return;
  const names = namesIn("drift", v);
  lineChart($("chart-drift"), names.map((f) => ({ name: f, cls: colour("drift:" + f), values: seriesOf((s) => ((s.drift || {})[v] || {})[f]) })), { min: 0, limit: 1, max: 2, grow: true });
}

function renderPerformance(r, sample) {
  const body = $("perf-body");
  const v = shownVersion();
  $("perf-version").textContent = v ? "version " + v : "";
  if (!usable("performance", r)) { empty(body, 7, why.performance); $("chart-performance").replaceChildren(); return; }
  const p = r.body;
  sample.perf = {};
  for (const [ver, windows] of Object.entries(p.versions || {})) {
    const first = (p.windows || []).map((w) => windows[w]).find(Boolean);
    if (!first) continue;
    const c = first.classification, e = first.estimated;
    sample.perf[ver] = {
      accuracy: c ? c.accuracy : null, f1: c ? c.f1 : null, roc_auc: c ? c.roc_auc : null,
      est_accuracy: e ? e.accuracy : null, est_f1: e ? e.f1 : null, est_roc_auc: e ? e.roc_auc : null,
    };
  }
  $("perf-summary").textContent = (p.status && p.status !== "ok" ? "status: " + p.status + (p.reason ? " (" + p.reason + ") · " : " · ") : "") +
    "chart: window " + ((p.windows || [])[0] || "–") + "; dashed lines are estimated (CBPE) from all predictions";
  const windows = (p.versions || {})[v];
  if (!windows) { empty(body, 7, "no performance figures for " + v + " yet"); return; }
  body.replaceChildren(...(p.windows || []).filter((w) => windows[w]).map((w) => {
    const x = windows[w], c = x.classification, e = x.estimated, reg = x.regression;
    const gaps = (x.baseline || []).map((b) => b.metric + " " + (b.gap === null ? "–" : (b.gap >= 0 ? "+" : "") + fmt(b.gap))).join(", ");
    const main = c ? [fmt(c.accuracy), fmt(c.f1), fmt(c.roc_auc)]
      : reg ? Object.entries(reg).filter(([, y]) => typeof y === "number").slice(0, 3).map(([k, y]) => k + " " + fmt(y)) : ["–", "–", "–"];
    return el("tr", { "data-testid": "perf-row-" + w, class: x.degraded ? "drifted" : "" },
      el("td", { text: w }),
      el("td", { class: "num", text: x.labelled + " / " + (x.labelled + x.unlabelled) }),
      ...main.map((m) => el("td", { class: "num", text: m })),
      el("td", { class: "num", text: e ? [fmt(e.accuracy), fmt(e.f1), fmt(e.roc_auc)].join(" / ") : "–" }),
      el("td", { class: x.degraded ? "bad" : "", text: gaps || "no baseline" }));
  }));
}

function drawPerformance() {
  const v = shownVersion();
  if (!v || !$("state-performance").classList.contains("live")) return;
  const get = (k) => seriesOf((s) => ((s.perf || {})[v] || {})[k]);
  lineChart($("chart-performance"), [
    { name: "accuracy", cls: "s0", values: get("accuracy") },
    { name: "F1", cls: "s1", values: get("f1") },
    { name: "ROC-AUC", cls: "s2", values: get("roc_auc") },
    { name: "est. accuracy", cls: "s0 dashed", values: get("est_accuracy") },
    { name: "est. F1", cls: "s1 dashed", values: get("est_f1") },
    { name: "est. ROC-AUC", cls: "s2 dashed", values: get("est_roc_auc") },
  ], { min: 0, max: 1 });
}

function renderShadow(r, sample) {
  const body = $("shadow-body"), budgets = $("budgets-body");
  if (!usable("shadow", r)) { empty(body, 7, why.shadow); budgets.replaceChildren(); $("shadow-paused").textContent = ""; $("chart-shadow").replaceChildren(); return; }
  const s = r.body;
  sample.agree = {};
  const mirrors = Object.entries(s.mirrors || {});
  for (const [c, m] of mirrors) sample.agree[c] = m.agreement_ratio;
  if (mirrors.length === 0) empty(body, 7, "nothing is mirrored");
  else body.replaceChildren(...mirrors.map(([c, m]) => el("tr", { "data-testid": "mirror-row-" + c },
    el("td", {}, el("b", { text: c }), " ", el("small", { text: pct(m.fraction) })),
    el("td", { class: "num", text: m.requests }),
    el("td", { class: "num", text: pct(m.agreement_ratio) }),
    el("td", { class: "num", text: fmt(m.mean_abs_score_diff) }),
    el("td", { class: "num" + (m.disagreement_beyond_noise > 0.05 ? " bad" : ""), text: pct(m.disagreement_beyond_noise) }),
    el("td", { class: "num", text: pct(m.error_ratio) }),
    el("td", { class: "num", text: fmt(m.candidate_latency && m.candidate_latency.p99, 2) + " / " + fmt(m.live_latency && m.live_latency.p99, 2) + " ms" }))));
  const paused = s.paused;
  $("shadow-paused").textContent = paused ? "PAUSED: " + (typeof paused === "string" ? paused : JSON.stringify(paused)) : "running · live " + fmt(s.live_rows_per_second, 1) + " rows/s";
  $("shadow-paused").className = paused ? "bad" : "note";
  budgets.replaceChildren(...Object.entries(s.budgets || {}).map(([k, b]) => el("tr", {},
    el("td", { text: k }),
    el("td", { class: "num", text: fmt(b.available_rows, 0) + " / " + fmt(b.burst, 0) }),
    el("td", { class: "num", text: pct(b.share) }),
    el("td", { class: "num", text: b.max_concurrency }))));
}

function drawShadow() {
  if (!$("state-shadow").classList.contains("live")) return;
  const names = namesIn("agree");
  lineChart($("chart-shadow"), names.map((c) => ({ name: "agreement " + c, cls: colour(c), values: seriesOf((s) => (s.agree || {})[c]) })), { min: 0, max: 1, pct: true });
}

function renderRobustness(r) {
  const body = $("robustness-body");
  if (!usable("robustness", r)) { empty(body, 4, why.robustness); $("importance-bars").replaceChildren(); return; }
  const versions = r.body.versions || [];
  if (versions.length === 0) empty(body, 4, "no results yet");
  else body.replaceChildren(...versions.map((x) => {
    const st = x.stress;
    const stress = !st ? "–" : Object.entries(st).filter(([, y]) => typeof y === "number").slice(0, 2).map(([k, y]) => k.replace(/_/g, " ") + " " + fmt(y)).join(", ") || "ran";
    return el("tr", { "data-testid": "robustness-row-" + x.version },
      el("td", {}, el("b", { text: x.version })),
      el("td", { class: "num", text: x.sensitivity ? pct(x.sensitivity.flip_ratio) : "–" }),
      el("td", { class: "num", text: x.adversarial ? pct(x.adversarial.flip_ratio) + " at ε≤" + fmt(x.adversarial.epsilon) : "–" }),
      el("td", { text: stress }));
  }));
  const v = shownVersion();
  $("importance-version").textContent = v ? "version " + v : "";
  const mine = versions.find((x) => x.version === v);
  const feats = mine && mine.importance ? mine.importance.features || [] : [];
  if (feats.length === 0) $("importance-bars").replaceChildren(el("p", { class: "empty", text: "no explanations yet" }));
  else barChart($("importance-bars"), feats.map((f) => ({ name: f.feature, value: f.share, label: pct(f.share) })), { max: 1 });
}

function renderAlerts(r) {
  const list = $("alerts-list");
  if (!usable("alerts", r)) { list.replaceChildren(el("li", { class: "empty", text: why.alerts })); $("alerts-summary").textContent = ""; return; }
  const a = r.body, active = a.alerts || [];
  if (active.length === 0) list.replaceChildren(el("li", { class: "empty", text: "nothing pending or firing" }));
  else list.replaceChildren(...active.map((x) => {
    const labels = Object.entries(x.labels || {}).filter(([k]) => k !== "alertname" && k !== "severity").map(([k, v]) => k + "=" + v).join(" ");
    return el("li", { "data-testid": "alert-" + x.alert, "data-state": x.state },
      el("span", { class: "badge " + x.state, text: x.state }), " ",
      el("b", { text: x.alert }), " ", el("small", { text: labels + " · value " + fmt(x.value) + " · since " + clock(x.active_since) }),
      x.annotations && x.annotations.summary ? el("div", { class: "note", text: x.annotations.summary }) : null);
  }));
  const rules = a.rules || [];
  $("alerts-summary").textContent = rules.length + " rules · " + (a.recent || []).length + " resolved recently · evaluated " + clock(a.evaluated_at);
}

function rolloutLine(x) {
  return x.candidate + " over " + x.stable + " · " + x.phase + " · step " + (x.step + 1) + "/" + (x.steps || []).length + " · weight " + x.weight + "%";
}

function renderRollouts(r) {
  const cur = $("rollout-current"), hist = $("rollout-history");
  if (!usable("rollouts", r)) { cur.replaceChildren(el("p", { class: "empty", text: why.rollouts })); hist.replaceChildren(); return; }
  const c = r.body.current;
  if (!c) cur.replaceChildren(el("p", { class: "empty", text: "no rollout in progress" }));
  else {
    const svg = svgEl("svg", { viewBox: "0 0 400 14", role: "img" });
    svg.append(svgEl("rect", { x: 0, y: 2, width: 400, height: 10, fill: "#eef0f3" }));
    svg.append(svgEl("rect", { class: "bar", x: 0, y: 2, width: 4 * Math.max(0, Math.min(100, c.weight || 0)), height: 10 }));
    const analysis = (c.analysis || []).map((m) => el("tr", {},
      el("td", { text: m.metric }), el("td", { class: "num", text: fmt(m.value) }),
      el("td", { text: Object.entries(m.threshold || {}).map(([k, v]) => k + " " + v).join(", ") }),
      el("td", { class: m.result === "fail" ? "bad" : m.result === "pass" ? "good" : "", text: m.result })));
    cur.replaceChildren(
      el("p", { "data-testid": "rollout-phase", "data-phase": c.phase }, el("b", { text: rolloutLine(c) })),
      el("div", { class: "chart" }, svg),
      c.message ? el("p", { class: "note", text: c.message }) : null,
      analysis.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "analysis" }), el("th", { text: "value" }), el("th", { text: "threshold" }), el("th", { text: "result" }))), el("tbody", {}, ...analysis)) : null);
  }
  hist.replaceChildren(...(r.body.history || []).slice(0, 5).map((x) => el("li", {}, el("small", { text: clock(x.started_at) + " " }), rolloutLine(x))));
}

function renderResources(r, sample) {
  const body = $("resources-body");
  if (!usable("resources", r)) { empty(body, 5, why.resources); return; }
  const x = r.body;
  sample.cpu = {};
  const rows = [];
  const row = (name, p, mem) => {
    sample.cpu[name] = p ? p.cpu_per_second : null;
    rows.push(el("tr", { "data-testid": "resources-row-" + name.split(" ")[0] },
      el("td", {}, el("b", { text: name })),
      el("td", { class: "num", text: p && p.cpu_per_second !== null && p.cpu_per_second !== undefined ? fmt(p.cpu_per_second, 3) + " cores" : "–" }),
      el("td", { class: "num", text: bytes(mem) }),
      el("td", { class: "num", text: p && p.threads !== undefined ? fmt(p.threads, 0) : "–" }),
      el("td", { class: "num", text: p && p.open_fds !== undefined ? fmt(p.open_fds, 0) : "–" })));
  };
  row("vigil", x.vigil, x.vigil && x.vigil.resident_memory_bytes);
  if (x.model_process) row("model pid " + (x.model_process.pid === null ? "?" : x.model_process.pid), x.model_process, x.model_process.resident_memory_bytes);
  if (x.model_cgroup) row("model cgroup", x.model_cgroup, x.model_cgroup.memory_bytes);
  if (!x.model_process && !x.model_cgroup) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty", text: "model server: not configured ([resources] model_pid / model_cgroup)" })));
  body.replaceChildren(...rows);
}

function drawResources() {
  if (!$("state-resources").classList.contains("live")) return;
  const names = namesIn("cpu");
  lineChart($("chart-resources"), names.map((n) => ({ name: n, cls: colour("res:" + n), values: seriesOf((s) => (s.cpu || {})[n]) })), { min: 0 });
}

function renderAudit(r) {
  const body = $("audit-body");
  if (!usable("audit", r)) { empty(body, 5, why.audit); return; }
  const entries = r.body.entries || [];
  if (entries.length === 0) { empty(body, 5, "no changes yet"); return; }
  // The API answers the last entries in the trail's order: newest first here.
  body.replaceChildren(...entries.slice(-12).reverse().map((e) => el("tr", { "data-testid": "audit-row", "data-action": e.action },
    el("td", { text: clock(e.time) }), el("td", { text: e.actor }), el("td", {}, el("b", { text: e.action })),
    el("td", { text: e.target === null || e.target === undefined ? "–" : e.target }),
    el("td", { text: e.remote || "" }))));
  if (r.body.chain && r.body.chain.ok === false) setState("audit", "error", "chain broken");
}

// ---- actions --------------------------------------------------------------------------------

/** A mutating admin call with the token; shows the outcome, or the API's JSON error. */
async function act(method, path, what) {
  const token = $("token").value.trim();
  const result = $("action-result"), error = $("action-error");
  result.textContent = what + "…"; result.className = "";
  error.hidden = true; error.textContent = "";
  const headers = {};
  if (token) headers.authorization = "Bearer " + token;
  let status = 0, text = "";
  try {
    const res = await fetch(path, { method, headers, cache: "no-store", signal: AbortSignal.timeout(30000) });
    status = res.status;
    text = await res.text();
  } catch (e) {
    text = String(e);
  }
  if (status >= 200 && status < 300) {
    let active = "";
    try { active = JSON.parse(text).active; } catch (_) { /* not JSON: say ok anyway */ }
    result.textContent = what + ": done" + (active ? ", active is " + active : "");
    result.className = "ok-text";
  } else {
    result.textContent = what + ": failed (" + (status || "network error") + ")";
    result.className = "bad";
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* keep the raw text */ }
    error.textContent = shown;
    error.hidden = false;
  }
  // Right away (the table and the trail show the change), or at the next tick if one is running.
  if (polling) pendingForce = true;
  else await poll(true);
}

// ---- the loop -------------------------------------------------------------------------------

/** Polls so far; the audit trail (read and verified whole by the API) is asked every 5th. */
let polls = 0;
let lastAudit = null;
const AUDIT_EVERY = 5;

async function poll(force) {
  if (polling) return;
  polling = true;
  force = force || pendingForce;
  pendingForce = false;
  try {
    const t = Date.now();
    const paths = ["/admin/versions", "/metrics", "/admin/latency", "/admin/drift", "/admin/performance", "/admin/shadow",
      "/admin/robustness", "/admin/alerts", "/admin/rollouts", "/admin/resources"];
    const wantAudit = force || !lastAudit || polls % AUDIT_EVERY === 0;
    const answers = await Promise.all([...paths.map(getJSON), wantAudit ? getJSON("/admin/audit?limit=12") : lastAudit]);
    const [versions, metrics, latency, drift, perf, shadow, robustness, alerts, rollouts, resources, audit] = answers;
    lastAudit = audit;
    polls++;
    const sample = { t };
    renderVersions(versions);
    renderTrafficAndErrors(metrics, sample);
    renderLatency(latency, sample);
    renderDrift(drift, sample);
    renderPerformance(perf, sample);
    renderShadow(shadow, sample);
    renderRobustness(robustness);
    renderAlerts(alerts);
    renderRollouts(rollouts);
    renderResources(resources, sample);
    renderAudit(audit);
    ring.push(sample);
    while (ring.length && ring[0].t < t - RING_MS) ring.shift();
    drawTrafficAndErrors(); drawLatency(); drawDrift(); drawPerformance(); drawShadow(); drawResources();
    const up = versions.status === 200;
    $("status").textContent = up ? "updated " + new Date(t).toLocaleTimeString() : "control plane unreachable";
    $("status").className = "pill " + (up ? "ok" : "bad");
    document.body.dataset.polls = String(polls);
  } finally {
    polling = false;
  }
}

function start() {
  const token = $("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value));
  $("token-form").addEventListener("submit", (e) => e.preventDefault());
  $("rollback").addEventListener("click", () => act("POST", "/admin/rollback", "roll back"));
  $("version-select").addEventListener("change", (e) => { chosen = e.target.value || null; poll(false); });
  poll(false);
  setInterval(() => poll(false), POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
