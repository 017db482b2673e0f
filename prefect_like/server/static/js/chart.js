// The throughput chart: task runs finished per second, one bar per bucket, as inline SVG.

import { formatNumber, formatScalar, formatTime, h, svg } from "./dom.js";

const W = 1000;
const H = 170;
const PAD = { left: 48, right: 8, top: 10, bottom: 22 };

export function throughputChart(series) {
  if (!series.length) return h("p", { class: "muted" }, "No task run has finished yet.");
  const peak = Math.max(...series.map((b) => b.per_second), 1e-9);
  const total = series.reduce((sum, b) => sum + b.count, 0);
  const sample = series.find((b) => b.count > 0);
  const span = sample ? sample.count / sample.per_second : 1;
  const width = (W - PAD.left - PAD.right) / series.length;
  const y = (v) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / peak);
  const bars = series.map((b, i) => svg("rect", {
    x: PAD.left + i * width + 0.5, y: y(b.per_second), width: Math.max(width - 1, 1),
    height: H - PAD.bottom - y(b.per_second), class: "chart-bar",
  }, svg("title", {}, text(`${formatTime(b.t)}: ${formatNumber(b.count)} finished (${formatScalar(b.per_second)}/s)`))));
  const label = (x, yy, content, anchor = "start") =>
    svg("text", { x, y: yy, "text-anchor": anchor, class: "chart-label" }, text(content));
  return h("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "task runs finished per second" },
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "chart-axis" }),
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: PAD.top, y2: PAD.top, class: "chart-grid" }),
      label(PAD.left - 6, PAD.top + 4, `${formatScalar(peak)}/s`, "end"),
      label(PAD.left - 6, H - PAD.bottom, "0", "end"),
      bars,
      label(PAD.left, H - 6, formatTime(series[0].t)),
      label(W - PAD.right, H - 6, formatTime(series.at(-1).t), "end")),
    h("figcaption", { class: "muted small" },
      `${formatNumber(total)} task runs finished · peak ${formatScalar(peak)}/s · ` +
      `${series.length} buckets of ${formatScalar(span)} s`));
}

const text = (content) => document.createTextNode(content);
