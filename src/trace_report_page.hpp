// The HTML page of the performance report (trace_report.cpp puts the data between head and
// tail). Inline CSS and script only: the file opens offline, from anywhere. The script writes
// what it drew into data attributes (body[data-rendered], #summary's counts, each track's
// data-slices, #failures' data-count), which tests/trace_browser_test.py checks in Chromium.
#pragma once

namespace mp::detail::trace {

inline constexpr const char* report_page_head = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>multiproc performance report</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 8px}h2{font-size:15px;margin:22px 0 6px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
.stats td:first-child{color:#666}.track{display:flex;align-items:center;margin:1px 0}
.track .label{width:190px;font:11px monospace;white-space:nowrap;overflow:hidden}
canvas{background:#f6f6f6;display:block}.axis{margin-left:190px;font:10px monospace;color:#666}
.bar{height:12px;background:#4e79a7;display:inline-block}.legend span{margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
#tip{position:fixed;background:#222;color:#fff;padding:4px 6px;font:11px monospace;
pointer-events:none;display:none;white-space:pre;border-radius:3px}
.fail td{color:#a00}.note{color:#666}
</style></head><body>
<h1>multiproc performance report</h1>
<div id="summary"></div>
<h2>Task stream</h2><div class="legend" id="legend"></div><div id="stream"></div>
<h2>Worker utilisation</h2><div id="util"></div>
<h2>Task durations per function</h2><div id="hist"></div>
<h2>Bytes moved</h2><div id="bytes"></div>
<h2>Batch sizes over time</h2><div id="batches"></div>
<h2>Failures</h2><div id="failures"></div>
<h2>Retries</h2><div id="retries"></div>
<div id="tip"></div>
<script type="application/json" id="mp-data">)html";

inline constexpr const char* report_page_tail = R"html(</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("mp-data").textContent);
const PAL = ["#4e79a7","#f28e2b","#59a14f","#b07aa1","#76b7b2","#edc948","#9c755f","#bab0ac"];
const BAD = ["", "#d62728", "#000"];
function h(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmtUs(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1e3) return (us / 1e3).toFixed(2) + " ms";
  return us + " \u00b5s";
}
function fmtBytes(b) {
  const u = ["B", "KiB", "MiB", "GiB"]; let i = 0;
  while (b >= 1024 && i < 3) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}
function svg(w, hgt) {
  const s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  s.setAttribute("width", w); s.setAttribute("height", hgt); return s;
}
function sv(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]); return e;
}
const C = D.counts, failures = C.exception + C.died, span = Math.max(1, D.span_us);
function summary() {
  const s = document.getElementById("summary");
  s.dataset.workers = D.workers.length; s.dataset.tasks = C.tasks;
  s.dataset.failures = failures; s.dataset.exceptions = C.exception; s.dataset.deaths = C.died;
  s.dataset.retries = C.retried; s.dataset.quarantined = C.quarantined;
  const t = h("table", {class: "stats"});
  const rows = [["recorded", fmtUs(span)], ["worker processes", D.workers.length],
    ["tasks", C.tasks + " (" + C.ok + " ok, " + C.exception + " raised, " + C.died +
      " lost with their worker)"], ["retries", C.retried + " (" + C.quarantined + " quarantined)"],
    ["batches sent", C.batches], ["bytes moved", fmtBytes(D.bytes.in) + " in, " +
      fmtBytes(D.bytes.out) + " out"]];
  if (C.dropped) rows.push(["not recorded (ring full)", C.dropped]);
  for (const r of rows) { const tr = h("tr"); tr.append(h("td", {}, r[0]), h("td", {}, r[1])); t.append(tr); }
  s.append(t);
}
function stream() {
  const W = Math.max(400, Math.min(1400, window.innerWidth - 260)), H = 18;
  const box = document.getElementById("stream"), T = D.tasks, n = T.w.length;
  const lg = document.getElementById("legend");
  D.fns.forEach((f, i) => { const s = h("span"); s.append(h("i", {class: "sw", style:
    "background:" + PAL[i % PAL.length]}), document.createTextNode(f)); lg.append(s); });
  for (const o of [1, 2]) { const s = h("span"); s.append(h("i", {class: "sw", style: "background:" +
    BAD[o]}), document.createTextNode(o === 1 ? "raised" : "worker died")); lg.append(s); }
  const tracks = D.workers.map((w) => {
    const row = h("div", {class: "track", "data-pid": w.pid});
    row.append(h("div", {class: "label", title: w.name}, w.name + " " + w.pid));
    const c = h("canvas", {width: W, height: H}); row.append(c); box.append(row);
    return {row, ctx: c.getContext("2d"), c, starts: [], idx: [], count: 0};
  });
  let prevTrack = -1, t = 0;
  for (let i = 0; i < n; i++) {
    const k = T.w[i]; if (k !== prevTrack) { t = 0; prevTrack = k; }
    t += T.s[i];
    const tr = tracks[k]; if (!tr) continue;
    const x = t / span * W, w = Math.max(1, T.d[i] / span * W);
    tr.ctx.fillStyle = T.o[i] ? BAD[T.o[i]] : PAL[T.f[i] % PAL.length];
    tr.ctx.fillRect(x, T.o[i] ? 0 : 2, w, T.o[i] ? H : H - 4);
    tr.starts.push(t); tr.idx.push(i); tr.count++;
  }
  tracks.forEach((tr) => { tr.row.dataset.slices = tr.count; });
  const ax = h("div", {class: "axis"});
  ax.textContent = "0" + " ".repeat(Math.max(1, Math.floor(W / 6.2) - 1 - fmtUs(span).length)) +
    fmtUs(span);
  box.append(ax);
  const tip = document.getElementById("tip");
  tracks.forEach((tr) => {
    tr.c.addEventListener("mousemove", (ev) => {
      const at = ev.offsetX / W * span; let lo = 0, hi = tr.starts.length - 1, best = -1;
      while (lo <= hi) { const m = (lo + hi) >> 1; if (tr.starts[m] <= at) { best = m; lo = m + 1; } else hi = m - 1; }
      const i = best >= 0 ? tr.idx[best] : -1;
      if (i < 0 || tr.starts[best] + Math.max(T.d[i], span / W) < at) { tip.style.display = "none"; return; }
      tip.textContent = D.fns[T.f[i]] + "\nstart " + fmtUs(tr.starts[best]) + "\nduration " +
        fmtUs(T.d[i]) + (T.o[i] ? "\n" + (T.o[i] === 1 ? "raised" : "worker died") : "");
      tip.style.display = "block"; tip.style.left = ev.clientX + 12 + "px"; tip.style.top = ev.clientY + 12 + "px";
    });
    tr.c.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  });
}
function util() {
  const t = h("table");
  for (const w of D.workers) {
    const life = Math.max(1, w.end_us - w.start_us), pct = Math.min(100, 100 * w.busy_us / life);
    const tr = h("tr", {"data-pid": w.pid}), bar = h("td");
    bar.append(h("span", {class: "bar", style: "width:" + (pct * 3).toFixed(0) + "px"}));
    tr.append(h("td", {}, w.name + " " + w.pid), bar, h("td", {}, pct.toFixed(1) + "% busy"),
      h("td", {}, w.tasks + " tasks"), h("td", {class: "note"}, (w.method ? w.method + ", started in " +
      fmtUs(w.latency_us) : "") + (w.how ? "; " + w.how : "")));
    t.append(tr);
  }
  document.getElementById("util").append(t);
}
function hist() {
  const box = document.getElementById("hist");
  for (const f of D.hist) {
    const max = Math.max(...f.counts, 1), bw = 22, s = svg(f.counts.length * bw + 10, 110);
    f.counts.forEach((c, i) => {
      const bh = c ? Math.max(1, 80 * c / max) : 0;
      const r = sv("rect", {x: i * bw, y: 85 - bh, width: bw - 2, height: bh, fill: "#4e79a7"});
      r.append(sv("title", {})); r.firstChild.textContent = c + " tasks, " +
        (i ? fmtUs(2 ** (i - 1)) + " - " + fmtUs(2 ** i) : "< 1 \u00b5s"); s.append(r);
      if (i % 3 === 0) { const t = sv("text", {x: i * bw, y: 100, "font-size": 9}); t.textContent =
        i ? fmtUs(2 ** (i - 1)) : "0"; s.append(t); }
    });
    const d = h("div"); d.append(h("div", {}, f.fn + ": " + f.n + " tasks, mean " + fmtUs(f.mean_us)), s);
    box.append(d);
  }
}
function line(points, series, colors, yfmt) {
  const W = 700, H = 140, s = svg(W + 90, H + 20);
  const ymax = Math.max(1, ...points.map((p) => Math.max(...series.map((k) => p[k]))));
  series.forEach((k, j) => {
    const pts = points.map((p) => (p[0] / span * W).toFixed(1) + "," + (H - p[k] / ymax * (H - 5)).toFixed(1));
    s.append(sv("polyline", {points: pts.join(" "), fill: "none", stroke: colors[j], "stroke-width": 1.5}));
  });
  const t = sv("text", {x: W + 4, y: 12, "font-size": 10}); t.textContent = yfmt(ymax); s.append(t);
  const t2 = sv("text", {x: W - 40, y: H + 14, "font-size": 10}); t2.textContent = fmtUs(span); s.append(t2);
  return s;
}
function bytes() {
  const b = document.getElementById("bytes");
  b.append(h("div", {}, "arguments in: " + fmtBytes(D.bytes.in) + " (blue); results out: " +
    fmtBytes(D.bytes.out) + " (orange), cumulative"));
  b.append(line(D.bytes.series, [1, 2], ["#4e79a7", "#f28e2b"], fmtBytes));
}
function batches() {
  const b = document.getElementById("batches");
  b.dataset.count = C.batches;
  b.append(h("div", {}, C.batches + " batches: mean (blue) and largest (orange) tasks per batch"));
  if (D.batches.length) b.append(line(D.batches, [1, 2], ["#4e79a7", "#f28e2b"], (v) => v + " tasks"));
}
function lists() {
  const f = document.getElementById("failures");
  f.dataset.count = failures;
  if (!failures) f.append(h("div", {class: "note"}, "none"));
  else {
    const t = h("table"); t.append(h("tr")); t.firstChild.append(h("th", {}, "time"),
      h("th", {}, "worker"), h("th", {}, "task"), h("th", {}, "function"), h("th", {}, "what"));
    for (const x of D.failures) {
      const tr = h("tr", {class: "fail", "data-kind": x.kind});
      tr.append(h("td", {}, fmtUs(x.t_us)), h("td", {}, x.pid), h("td", {}, x.task +
        (x.attempt > 1 ? " (attempt " + x.attempt + ")" : "")), h("td", {}, x.fn),
        h("td", {}, (x.kind === "died" ? "worker " : "raised ") + x.detail));
      t.append(tr);
    }
    f.append(t);
    if (D.failures.length < failures) f.append(h("div", {class: "note"}, "first " + D.failures.length + " of " + failures));
  }
  const r = document.getElementById("retries");
  r.dataset.count = C.retried;
  if (!D.retries.length) r.append(h("div", {class: "note"}, "none"));
  for (const x of D.retries)
    r.append(h("div", {"data-kind": x.kind}, fmtUs(x.t_us) + ": " + x.what + " (its worker " + x.worker + " died)"));
}
summary(); stream(); util(); hist(); bytes(); batches(); lists();
document.body.dataset.rendered = "1";
document.body.dataset.renderMs = Math.round(performance.now());
</script></body></html>
)html";

}  // namespace mp::detail::trace
