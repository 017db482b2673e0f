// The sweep view's plots, as inline SVG: scatter, step line, bars, parallel coordinates.
//
// Our own few hundred lines, no library: every plot draws what the server aggregated (at most a
// few thousand sampled points, bins, steps), never a sweep's raw 200,000 trials. Colours are
// the Okabe-Ito palette and a cividis-like ramp, both readable with colour-blind eyes and on a
// dark background. Each mark has a class (`mark`, `pc-line`, `hist-bar`, `best-mark`,
// `imp-bar`) and a <title> that names the trial, for hover and for screen readers.

import { formatNumber, formatScalar, h, svg } from "./dom.js";

const text = (content) => document.createTextNode(String(content));
const PAD = { left: 56, right: 12, top: 12, bottom: 30 };

// Cividis-like: dark blue to yellow, perceptually even, safe for every common colour blindness.
const RAMP = ["#00204d", "#213d6b", "#575c6d", "#7c7b78", "#a59c74", "#d3c064", "#ffe945"];
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442"];

export function rampColor(t) {
  if (!Number.isFinite(t)) return "#999";
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const mix = (a, b) => Math.round(a + (b - a) * (x - i));
  const [r1, g1, b1] = hex(RAMP[i]);
  const [r2, g2, b2] = hex(RAMP[i + 1]);
  return `rgb(${mix(r1, r2)},${mix(g1, g2)},${mix(b1, b2)})`;
}
const hex = (c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));

/**
 * A scale over a column as the server describes it ({type, log, min, max, categories}).
 * `at(value)` maps to [0, 1]; `ticks()` gives a few labelled positions.
 */
export function scaleFor(column, values = null) {
  if (column.type === "category") {
    const cats = column.categories;
    const index = new Map(cats.map((c, k) => [c, k]));
    const n = Math.max(cats.length - 1, 1);
    return {
      kind: "category",
      at: (v) => (v === null || v === undefined ? NaN : cats.length === 1 ? 0.5 : (index.get(categoryText(v)) ?? NaN) / n),
      ticks: () => cats.slice(0, 12).map((c, k) => [cats.length === 1 ? 0.5 : k / n, c]),
      invert: (t0, t1) => cats.filter((c, k) => { const t = cats.length === 1 ? 0.5 : k / n; return t >= t0 && t <= t1; }),
    };
  }
  let lo = column.min;
  let hi = column.max;
  if (values) {
    const present = values.filter(Number.isFinite);
    if (present.length) { lo = Math.min(...present); hi = Math.max(...present); }
  }
  if (lo === null || lo === undefined) { lo = 0; hi = 1; }
  const log = column.log && lo > 0;
  const f = log ? Math.log10 : (v) => v;
  let a = f(lo);
  let b = f(hi);
  if (a === b) { a -= 0.5; b += 0.5; }
  const at = (v) => (typeof v === "number" ? (f(v) - a) / (b - a) : NaN);
  const ticks = () => {
    if (log) {
      const out = [];
      for (let e = Math.ceil(a); e <= Math.floor(b); e++) out.push([(e - a) / (b - a), formatScalar(10 ** e)]);
      return out.length >= 2 ? out : [[0, formatScalar(lo)], [1, formatScalar(hi)]];
    }
    return [0, 0.25, 0.5, 0.75, 1].map((t) => [t, tick(a + t * (b - a))]);
  };
  const invert = (t0, t1) => {
    const g = (t) => (log ? 10 ** (a + t * (b - a)) : a + t * (b - a));
    return [g(t0), g(t1)];
  };
  return { kind: log ? "log" : "linear", at, ticks, invert };
}

// Axis labels: three significant digits are enough to read a position.
const tick = (v) => (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5) || v === 0 ? String(+v.toPrecision(3)) : v.toExponential(1);

export const categoryText = (v) => (typeof v === "string" ? v : JSON.stringify(v));

function frame(width, height, label, children) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "plot" }, children);
}

function axes(width, height, x, y, xLabel, yLabel) {
  const w = width - PAD.left - PAD.right;
  const hh = height - PAD.top - PAD.bottom;
  const out = [
    svg("line", { x1: PAD.left, x2: PAD.left + w, y1: PAD.top + hh, y2: PAD.top + hh, class: "chart-axis" }),
    svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + hh, class: "chart-axis" }),
  ];
  for (const [t, label] of x.ticks()) {
    out.push(svg("text", { x: PAD.left + t * w, y: height - 14, "text-anchor": "middle", class: "chart-label" }, text(label)));
  }
  for (const [t, label] of y.ticks()) {
    const yy = PAD.top + (1 - t) * hh;
    out.push(svg("line", { x1: PAD.left, x2: PAD.left + w, y1: yy, y2: yy, class: "chart-grid" }));
    out.push(svg("text", { x: PAD.left - 6, y: yy + 4, "text-anchor": "end", class: "chart-label" }, text(label)));
  }
  out.push(svg("text", { x: PAD.left + w / 2, y: height - 1, "text-anchor": "middle", class: "chart-title" }, text(xLabel)));
  out.push(svg("text", { x: 12, y: PAD.top + hh / 2, "text-anchor": "middle", class: "chart-title",
    transform: `rotate(-90 12 ${PAD.top + hh / 2})` }, text(yLabel)));
  return out;
}

/** The metric against one parameter: one circle per sampled trial that has the metric. */
export function scatter({ xColumn, yColumn, xs, ys, trials, width = 360, height = 240, onPick }) {
  const x = scaleFor(xColumn, xColumn.type === "category" ? null : xs);
  const y = scaleFor(yColumn, ys);
  const w = width - PAD.left - PAD.right;
  const hh = height - PAD.top - PAD.bottom;
  const marks = [];
  for (let k = 0; k < xs.length; k++) {
    const tx = x.at(xs[k]);
    const ty = y.at(ys[k]);
    if (!Number.isFinite(tx) || !Number.isFinite(ty)) continue;
    // Categories get a small deterministic jitter so equal points do not hide each other.
    const jitter = x.kind === "category" ? ((trials[k] * 2654435761) % 1000 / 1000 - 0.5) * 0.06 : 0;
    marks.push(svg("circle", {
      cx: PAD.left + (tx + jitter) * w, cy: PAD.top + (1 - ty) * hh, r: 2.6, class: "mark",
      fill: PALETTE[0], "data-trial": trials[k],
    }, svg("title", {}, text(`trial ${trials[k]}: ${xColumn.name}=${formatScalar(xs[k])}, ${yColumn.name}=${formatScalar(ys[k])}`))));
  }
  const plot = frame(width, height, `${yColumn.name} against ${xColumn.name}`,
    [...axes(width, height, x, y, short(xColumn.name), short(yColumn.name)), ...marks]);
  if (onPick) plot.addEventListener("click", (event) => {
    const trial = event.target?.getAttribute?.("data-trial");
    if (trial !== null && trial !== undefined) onPick(Number(trial));
  });
  return plot;
}

/** Best so far: a step line through every improvement, a dot at each. */
export function bestLine({ steps, metric, mode, total, width = 480, height = 240 }) {
  if (!steps.length) return h("p", { class: "muted" }, "No trial has reported this metric yet.");
  const values = steps.map((s) => s.value);
  const x = { ticks: () => [[0, "0"], [0.5, formatNumber(Math.round(total / 2))], [1, formatNumber(total)]],
    at: (v) => (total <= 1 ? 0 : v / (total - 1)) };
  const y = scaleFor({ ...metric, type: "number" }, values);
  const w = width - PAD.left - PAD.right;
  const hh = height - PAD.top - PAD.bottom;
  const px = (s) => PAD.left + x.at(s.trial) * w;
  const py = (s) => PAD.top + (1 - y.at(s.value)) * hh;
  let d = `M${px(steps[0])},${py(steps[0])}`;
  for (let k = 1; k < steps.length; k++) d += `H${px(steps[k])}V${py(steps[k])}`;
  const dots = steps.filter((s) => s.id).map((s) => svg("circle", {
    cx: px(s), cy: py(s), r: 3.2, class: "best-mark", fill: PALETTE[1],
  }, svg("title", {}, text(`trial ${s.trial}: ${mode === "min" ? "lowest" : "highest"} so far ${formatScalar(s.value)}`))));
  return frame(width, height, `best ${metric.name} so far by trial`,
    [...axes(width, height, x, y, "trial", short(metric.name)),
      svg("path", { d, class: "best-line", fill: "none", stroke: PALETTE[1] }), ...dots]);
}

/** The metric's histogram, from the server's bins. */
export function histogramBars({ histogram, metric, width = 480, height = 240 }) {
  const { edges, counts } = histogram ?? { edges: [], counts: [] };
  if (!counts.length) return h("p", { class: "muted" }, "No trial has reported this metric yet.");
  const peak = Math.max(...counts, 1);
  const column = { ...metric, type: "number", log: histogram.log, min: edges[0], max: edges.at(-1) };
  const x = scaleFor(column);
  const y = { ticks: () => [[0, "0"], [1, formatNumber(peak)]], at: (v) => v / peak };
  const w = width - PAD.left - PAD.right;
  const hh = height - PAD.top - PAD.bottom;
  const bars = counts.map((n, k) => {
    const x0 = PAD.left + x.at(edges[k]) * w;
    const x1 = PAD.left + x.at(edges[k + 1]) * w;
    return svg("rect", {
      x: x0 + 0.5, width: Math.max(x1 - x0 - 1, 1), y: PAD.top + (1 - n / peak) * hh, height: (n / peak) * hh,
      class: "hist-bar", fill: PALETTE[4],
    }, svg("title", {}, text(`${formatScalar(edges[k])} – ${formatScalar(edges[k + 1])}: ${formatNumber(n)} trials`)));
  });
  return frame(width, height, `histogram of ${metric.name}`,
    [...axes(width, height, x, y, short(metric.name), "trials"), ...bars]);
}

/** Parameter importance as horizontal bars, most important first. */
export function importanceBars({ importance, width = 480 }) {
  if (!importance.length) return h("p", { class: "muted" }, "Needs at least three trials with the metric.");
  const row = 22;
  const height = PAD.top + importance.length * row + 8;
  const left = 150;
  const w = width - left - 60;
  const bars = importance.flatMap((item, k) => [
    svg("text", { x: left - 8, y: PAD.top + k * row + 15, "text-anchor": "end", class: "chart-label" }, text(short(item.name))),
    svg("rect", { x: left, y: PAD.top + k * row + 4, height: row - 8, width: Math.max(item.score * w, 1),
      class: "imp-bar", fill: PALETTE[2] }, svg("title", {}, text(`${item.name}: ${formatScalar(item.score)} of the variance`))),
    svg("text", { x: left + Math.max(item.score * w, 1) + 6, y: PAD.top + k * row + 15, class: "chart-label" }, text(formatScalar(item.score))),
  ]);
  return frame(width, height, "parameter importance", bars);
}

/**
 * Parallel coordinates: one vertical axis per column, one line per sampled trial coloured by
 * the metric. Drag along an axis to brush a range: `onBrush(column, [lo, hi] | categories | null)`.
 * Brushes already set are drawn as bands.
 */
export function parallelCoordinates({ columns, points, metric, mode, brushes, onBrush, width = 1100, height = 320 }) {
  if (!columns.length || !points.ids.length) return h("p", { class: "muted" }, "No trial to draw yet.");
  const top = 24;
  const bottom = height - 36;
  const step = columns.length > 1 ? (width - 120) / (columns.length - 1) : 0;
  const axisX = (k) => 60 + k * step;
  // Axes span every trial's values (the server's min and max), not only the points drawn, so a
  // brush keeps its place when the filter it sets redraws the lines.
  const scales = columns.map((c) => scaleFor(c));
  const metricScale = metric ? scaleFor(metric, points.values[metric.name]) : null;
  const py = (t) => bottom - t * (bottom - top);
  const lines = [];
  for (let i = 0; i < points.ids.length; i++) {
    let d = "";
    let pen = false;
    columns.forEach((c, k) => {
      const t = scales[k].at(points.values[c.name][i]);
      if (!Number.isFinite(t)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${axisX(k).toFixed(1)},${py(t).toFixed(1)}`;
      pen = true;
    });
    if (!d) continue;
    const m = metric ? metricScale.at(points.values[metric.name][i]) : NaN;
    const good = mode === "min" ? 1 - m : m;
    lines.push(svg("path", { d, class: "pc-line", stroke: rampColor(good), fill: "none", "data-trial": points.trial[i] },
      svg("title", {}, text(`trial ${points.trial[i]}`))));
  }
  const axesEls = columns.flatMap((c, k) => {
    const x = axisX(k);
    const band = bandOf(brushes.get(c.name), scales[k]);
    const out = [svg("line", { x1: x, x2: x, y1: top, y2: bottom, class: "pc-axis" })];
    if (band) out.push(svg("rect", { x: x - 7, width: 14, y: py(band[1]), height: Math.max(py(band[0]) - py(band[1]), 2), class: "pc-brush" }));
    for (const [t, label] of scales[k].ticks()) {
      out.push(svg("text", { x: x + 5, y: py(t) + 4, class: "chart-label" }, text(label)));
    }
    out.push(svg("text", { x, y: top - 8, "text-anchor": "middle", class: "chart-title" }, text(short(c.name))));
    // A wide invisible hit area per axis takes the drag.
    const hit = svg("rect", { x: x - 12, width: 24, y: top, height: bottom - top, class: "pc-hit",
      "data-column": c.name, tabindex: -1 });
    out.push(hit);
    return out;
  });
  const plot = frame(width, height, "parallel coordinates of the trials", [...lines, ...axesEls]);
  let drag = null;
  const toT = (event) => {
    const box = plot.getBoundingClientRect();
    const yy = ((event.clientY - box.top) / box.height) * height;
    return Math.min(Math.max((bottom - yy) / (bottom - top), 0), 1);
  };
  plot.addEventListener("pointerdown", (event) => {
    const name = event.target?.getAttribute?.("data-column");
    if (!name) return;
    drag = { name, k: columns.findIndex((c) => c.name === name), t0: toT(event) };
    plot.setPointerCapture?.(event.pointerId);
    event.preventDefault();
  });
  plot.addEventListener("pointerup", (event) => {
    if (!drag) return;
    const t1 = toT(event);
    const { name, k } = drag;
    const [lo, hi] = [Math.min(drag.t0, t1), Math.max(drag.t0, t1)];
    drag = null;
    if (hi - lo < 0.01) { onBrush(name, null); return; } // a click clears the axis's brush
    const scale = scales[k];
    if (scale.kind === "category") {
      const picked = scale.invert(lo, hi);
      onBrush(name, picked.length ? { column: name, in: picked } : null);
    } else {
      const [min, max] = scale.invert(lo, hi);
      onBrush(name, { column: name, min, max });
    }
  });
  const legend = metric ? h("p", { class: "muted small" },
    `Lines coloured by ${metric.name}: yellow is ${mode === "min" ? "lowest" : "highest"}. Drag along an axis to filter; click an axis to clear its filter.`) : null;
  return h("div", null, plot, legend);
}

/**
 * Learning curves: one line per trial through what it reported, step by step. A pruned trial's
 * line is dashed and ends in a cross where the scheduler stopped it.
 */
export function learningCurves({ curves, name, width = 1100, height = 300 }) {
  if (!curves.length) return h("p", { class: "muted" }, "No trial shown has reported intermediate metrics (sweep.report) yet.");
  const steps = curves.flatMap((c) => c.points.map((p) => p[0]));
  const values = curves.flatMap((c) => c.points.map((p) => p[1]));
  const x = scaleFor({ type: "number", log: false, min: Math.min(...steps), max: Math.max(...steps) });
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const y = scaleFor({ type: "number", log: lo > 0 && hi / lo >= 100, min: lo, max: hi });
  const w = width - PAD.left - PAD.right;
  const hh = height - PAD.top - PAD.bottom;
  const px = (p) => PAD.left + x.at(p[0]) * w;
  const py = (p) => PAD.top + (1 - y.at(p[1])) * hh;
  const marks = curves.flatMap((c, k) => {
    const color = c.pruned ? "#999" : PALETTE[k % PALETTE.length];
    const d = c.points.map((p, j) => `${j ? "L" : "M"}${px(p).toFixed(1)},${py(p).toFixed(1)}`).join("");
    const last = c.points.at(-1);
    const label = `trial ${c.trial}${c.pruned ? " (pruned)" : ""}: ${name} ${formatScalar(last[1])} at step ${formatScalar(last[0])}`;
    const out = [svg("path", { d, class: c.pruned ? "curve curve-pruned" : "curve", stroke: color, fill: "none",
      "data-trial": c.trial }, svg("title", {}, text(label)))];
    if (c.pruned) {
      const [cx, cy] = [px(last), py(last)];
      out.push(svg("path", { d: `M${cx - 4},${cy - 4}L${cx + 4},${cy + 4}M${cx - 4},${cy + 4}L${cx + 4},${cy - 4}`,
        class: "pruned-mark", stroke: PALETTE[5] }, svg("title", {}, text(label))));
    }
    return out;
  });
  return frame(width, height, `learning curves of ${name}`, [...axes(width, height, x, y, "step", name), ...marks]);
}

/** Where a filter spec ({min, max} or {in}) lies on an axis, as [t0, t1] in [0, 1]. */
function bandOf(spec, scale) {
  if (!spec) return null;
  if (spec.in) {
    const ts = spec.in.map((v) => scale.at(v)).filter(Number.isFinite);
    return ts.length ? [Math.min(...ts), Math.max(...ts)] : null;
  }
  const t0 = spec.min === undefined || spec.min === null ? 0 : scale.at(spec.min);
  const t1 = spec.max === undefined || spec.max === null ? 1 : scale.at(spec.max);
  return [Math.max(Math.min(t0, 1), 0), Math.max(Math.min(t1, 1), 0)];
}

export const short = (name) => name.replace(/^param\./, "").replace(/^result\./, "");
