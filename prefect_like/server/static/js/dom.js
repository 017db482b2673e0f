// Building the page. Every piece of user data (names, parameters, results, logs, tracebacks)
// reaches the DOM as a text node or an attribute value set by h(), never as HTML, so a task
// named "<img src=x onerror=alert(1)>" shows as exactly that text.

/** h("a", {href, class, onclick}, ...children): strings and numbers become text nodes. */
export function h(tag, props = null, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * Replace an element's children, leaving out null, undefined and false as h() does
 * (replaceChildren itself would show them as the text "null").
 */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** An element of the SVG namespace, for the charts (attributes only, no text from users). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

// -- formatting -------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

export function formatTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

export const formatNumber = (n) => Number(n).toLocaleString("en-US");

/** A short one-line rendering of a JSON value, for table cells. */
export function summary(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return formatScalar(value);
  if (typeof value === "string") return value;
  if (typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).map(([k, v]) => `${k}=${summary(v)}`).join(", ");
  }
  return JSON.stringify(value);
}

export function formatScalar(value) {
  if (typeof value !== "number" || Number.isInteger(value)) return value === null ? "" : String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(+value.toPrecision(6)) : value.toExponential(4);
}

export const pretty = (value) => JSON.stringify(value, null, 2);

// -- states -----------------------------------------------------------------------------

// The state vocabulary comes from the server (GET /api/states, made from prefect_like.states):
// `useStates` is called once at start-up, before any view renders.
let GROUPS = {};
let TYPE_GROUPS = {};
let FINAL_TYPES = new Set();
let FINAL_NAMES = new Set();
/** The state types, in the server's order (for a state filter). */
export let STATE_TYPES = [];

export function useStates(vocabulary) {
  const errors = new Set(vocabulary.error_types);
  const done = new Set(vocabulary.done_names);
  GROUPS = {};
  for (const [name, type] of Object.entries(vocabulary.names)) {
    // Five groups for a progress bar: done, failed, not run (skipped), running, pending.
    GROUPS[name] = done.has(name) ? "done" : errors.has(type) ? "failed"
      : type === "RUNNING" ? "running" : vocabulary.failure_names.includes(name) ? "skipped" : "pending";
  }
  // A name of the user's own (Completed(name="Skipped")) goes with its type's default name.
  TYPE_GROUPS = Object.fromEntries(vocabulary.types.map((t) => [t, GROUPS[vocabulary.default_names[t]]]));
  FINAL_TYPES = new Set(vocabulary.final_types);
  FINAL_NAMES = new Set(vocabulary.final_state_names);
  STATE_TYPES = vocabulary.types;
}

export const GROUP_ORDER = ["done", "failed", "skipped", "running", "pending"];
export const GROUP_LABEL = { done: "done", failed: "failed", skipped: "not run", running: "running", pending: "pending" };

// A name unknown to the vocabulary goes with its type when known, else counts as pending.
export const stateGroup = (name, type = null) => GROUPS[name] ?? TYPE_GROUPS[type] ?? "pending";
export const isFinal = (run) => FINAL_TYPES.has(run.state) || FINAL_NAMES.has(run.state_name);

export function stateBadge(type, name) {
  const label = name || type || "Unknown";
  return h("span", { class: `badge state-${stateGroup(label, type)}`, title: type || null }, label);
}

/** Counts by state name as a stacked bar plus "done / total". */
export function progressBar(counts) {
  const groups = Object.fromEntries(GROUP_ORDER.map((g) => [g, 0]));
  let total = 0;
  for (const [name, n] of Object.entries(counts ?? {})) {
    groups[stateGroup(name)] += n;
    total += n;
  }
  const bar = h("div", { class: "bar", role: "img" });
  const parts = [];
  for (const group of GROUP_ORDER) {
    if (!groups[group]) continue;
    parts.push(`${formatNumber(groups[group])} ${GROUP_LABEL[group]}`);
    const pct = (100 * groups[group]) / total;
    bar.append(h("span", { class: `seg seg-${group}`, style: `width:${pct}%`, title: `${formatNumber(groups[group])} ${GROUP_LABEL[group]}` }));
  }
  bar.setAttribute("aria-label", parts.join(", ") || "no task runs");
  const finished = groups.done + groups.failed + groups.skipped;
  return h("div", { class: "progress" }, bar,
    h("span", { class: "progress-text" }, total ? `${formatNumber(finished)}/${formatNumber(total)}` : "–"));
}

// -- small widgets ----------------------------------------------------------------------

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", null, title) : null, ...children);
}

export function jsonBlock(value) {
  if (value === null || value === undefined) return h("p", { class: "muted" }, "none");
  return h("pre", { class: "json" }, pretty(value));
}

export function keyValues(obj) {
  const entries = Object.entries(obj ?? {});
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "kv" }, h("tbody", null, entries.map(([k, v]) =>
    h("tr", null, h("th", null, k), h("td", null, typeof v === "object" && v !== null ? JSON.stringify(v) : formatScalar(v))))));
}

export function pager({ offset, limit, total, onPage }) {
  const first = total ? offset + 1 : 0;
  const last = Math.min(offset + limit, total);
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Prev"),
    h("span", { class: "pager-text" }, `${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(total)}`),
    h("button", { type: "button", disabled: last >= total, onclick: () => onPage(offset + limit) }, "Next ›"));
}

export function select(label, value, options, onChange) {
  return h("label", { class: "filter" }, h("span", null, label),
    h("select", { onchange: (e) => onChange(e.target.value), "aria-label": label },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}

export function errorBox(error) {
  return h("div", { class: "error-box", role: "alert" },
    error.status === 404 ? "Not found: " : "Could not load: ", error.message);
}

export const link = (href, ...children) => h("a", { href }, ...children);
