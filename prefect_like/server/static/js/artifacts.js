// The artifacts of a flow run or task run: tables as tables, markdown rendered, links as links,
// progress as a bar.
//
// Nothing an artifact holds ever becomes HTML. Markdown is parsed here into DOM nodes built with
// h() (text nodes and attributes), so "<script>" in a markdown artifact shows as that text; only a
// small subset is rendered (headings, paragraphs, lists, code, emphasis, links, pipe tables). A
// link is a link only when its URL is absolute with a safe scheme (http, https, mailto): anything
// else ("javascript:...", a relative path, "s3://...") is shown as text.

import { get, id } from "./api.js";
import { card, errorBox, formatScalar, formatTime, h, summary } from "./dom.js";
import { href } from "./router.js";

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);
const LIMIT = 50;

/** The URL if it is absolute with a safe scheme, else null. */
export function safeUrl(text) {
  try {
    const url = new URL(String(text));
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function linkTo(url, text) {
  const target = safeUrl(url);
  return target ? h("a", { href: target, rel: "noopener noreferrer nofollow", target: "_blank" }, text) : text;
}

/**
 * The card listing a run's artifacts ("flow-runs/ID" or "task-runs/ID"); empty if it has none.
 * `slot.refresh()` reads them again (a live run's progress bars move).
 */
export function artifactsCard(path, signal, { showRun = false } = {}) {
  const slot = h("div", { "data-testid": "artifacts" });
  const load = () => get(`${path}/artifacts`, { limit: LIMIT }, signal).then((page) => {
    if (!page.items.length) return;
    slot.replaceChildren(card(`Artifacts (${page.total})`,
      page.items.map((artifact) => artifactView(artifact, showRun)),
      page.total > page.items.length
        ? h("p", { class: "muted small" }, `the ${LIMIT} newest of ${page.total}; prefect-like artifacts ls shows them all`)
        : null));
  }, (error) => { if (!signal.aborted) slot.replaceChildren(errorBox(error)); });
  slot.refresh = load;
  load();
  return slot;
}

function artifactView(artifact, showRun) {
  return h("article", { class: "artifact", "data-type": artifact.type ?? "", "data-key": artifact.key ?? "" },
    h("header", { class: "artifact-head" },
      h("strong", null, artifact.key ?? "(no key)"), " ",
      h("span", { class: "badge" }, artifact.type ?? "?"), " ",
      h("span", { class: "muted small" }, formatTime(artifact.created)),
      showRun && artifact.task_run_id
        ? [" ", h("a", { href: href(`/task-runs/${id(artifact.task_run_id)}`), class: "small" }, "task run")]
        : null),
    artifact.description ? h("div", { class: "artifact-description" }, markdown(artifact.description)) : null,
    body(artifact));
}

function body(artifact) {
  const data = artifact.data;
  switch (artifact.type) {
    case "table":
      return table(data);
    case "markdown":
      return h("div", { class: "markdown" }, markdown(typeof data === "string" ? data : summary(data)));
    case "link":
      return h("p", null, linkTo(data?.link, data?.link_text || data?.link || ""));
    case "image":
      return h("p", null, linkTo(data, String(data ?? "")));
    case "progress":
      return progress(data);
    default:
      return h("pre", { class: "json" }, JSON.stringify(data, null, 2));
  }
}

function progress(value) {
  const pct = typeof value === "number" && Number.isFinite(value) ? Math.max(0, Math.min(100, value)) : 0;
  return h("div", { class: "progress artifact-progress" },
    h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct },
      h("span", { class: "seg seg-done", style: `width:${pct}%` })),
    h("span", { class: "progress-text" }, `${formatScalar(pct)}%`));
}

/** Columns and rows of a table in any of Prefect's three shapes. */
export function tableRows(data) {
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const columns = Object.keys(data);
    const height = Math.max(0, ...columns.map((c) => (Array.isArray(data[c]) ? data[c].length : 0)));
    return [columns, Array.from({ length: height }, (_, i) => columns.map((c) => (Array.isArray(data[c]) ? data[c][i] : null)))];
  }
  const rows = Array.isArray(data) ? data : [];
  if (rows.length && rows.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    return [columns, rows.map((r) => columns.map((c) => r[c]))];
  }
  const width = Math.max(0, ...rows.map((r) => (Array.isArray(r) ? r.length : 0)));
  return [Array.from({ length: width }, (_, i) => String(i)), rows.filter(Array.isArray).map((r) => Array.from({ length: width }, (_, i) => r[i]))];
}

function table(data) {
  const [columns, rows] = tableRows(data);
  const cell = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : formatScalar(v));
  return h("div", { class: "table-wrap" }, h("table", { class: "runs artifact-table" },
    h("thead", null, h("tr", null, columns.map((c) => h("th", null, c)))),
    h("tbody", null, rows.map((r) => h("tr", null, r.map((v) => h("td", { class: typeof v === "number" ? "num" : null }, cell(v))))))));
}

// -- a small markdown subset, straight to DOM nodes -------------------------------------------

/** Inline markdown: `code`, **bold**, *em* / _em_, [text](url); everything else is text. */
function inline(text) {
  const out = [];
  const pattern = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    const token = match[0];
    if (match[1]) out.push(h("code", null, token.slice(1, -1)));
    else if (match[2]) out.push(h("strong", null, inline(token.slice(2, -2))));
    else if (match[3]) out.push(h("em", null, inline(token.slice(1, -1))));
    else {
      const split = token.indexOf("](");
      out.push(linkTo(token.slice(split + 2, -1), token.slice(1, split)));
    }
    last = match.index + token.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const isTableRow = (line) => /^\s*\|.*\|\s*$/.test(line);
const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());

/** Block markdown: headings, fenced code, lists, pipe tables, paragraphs. */
export function markdown(source) {
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    if (line.startsWith("```")) {
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      blocks.push(h("pre", null, h("code", null, code.join("\n"))));
      i += 1;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      blocks.push(h(`h${Math.min(6, heading[1].length + 2)}`, null, inline(heading[2])));
      i += 1;
      continue;
    }
    if (isTableRow(line) && i + 1 < lines.length && /^\s*\|?[\s:|-]+\|?\s*$/.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const head = cells(line);
      const rows = [];
      for (i += 2; i < lines.length && isTableRow(lines[i]); i += 1) rows.push(cells(lines[i]));
      blocks.push(h("table", { class: "runs" }, h("thead", null, h("tr", null, head.map((c) => h("th", null, inline(c))))),
        h("tbody", null, rows.map((r) => h("tr", null, r.map((c) => h("td", null, inline(c))))))));
      continue;
    }
    const bullet = /^\s*([-*+]|\d+[.)])\s+/;
    if (bullet.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items = [];
      for (; i < lines.length && bullet.test(lines[i]); i += 1) items.push(h("li", null, inline(lines[i].replace(bullet, ""))));
      blocks.push(h(ordered ? "ol" : "ul", null, items));
      continue;
    }
    const paragraph = [];
    for (; i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```)/.test(lines[i]) && !bullet.test(lines[i]); i += 1) {
      paragraph.push(lines[i].trim());
    }
    blocks.push(h("p", null, inline(paragraph.join(" "))));
  }
  return blocks;
}
