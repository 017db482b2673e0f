// The sweep view of a flow run, or of a stored sweep (every flow run of it, the first and each
// resume): its trials (the runs of one task) as plots and as a table with one column per
// parameter and result field, sorted, filtered and aggregated by the server
// (GET /api/dashboard/flow-runs/{id}/sweep, .../sweep/trials and .../sweep/curves, or the same
// under /api/dashboard/sweeps/{id}/).
//
// Everything the user chose lives in the hash (#/flow-runs/<id>/sweep?metric=...&filters=...),
// so a view can be bookmarked and shared. Brushing an axis of the parallel coordinates, or
// adding a filter from the form, sets `filters`; the plots and the table both follow it. While
// the flow run is live, both refresh every two seconds from the server's aggregates.

import { cancelButton, resumeCommand } from "./actions.js";
import { get, id } from "./api.js";
import {
  card, errorBox, fill, formatDuration, formatNumber, formatScalar, formatTime, h, isFinal, link, pager, select,
  stateBadge,
} from "./dom.js";
import {
  bestLine, histogramBars, importanceBars, learningCurves, parallelCoordinates, scatter, short,
} from "./plots.js";
import { href, poll, setParams } from "./router.js";

const PAGE = 50;
const LIVE_MS = 2000;
const MAX_SCATTERS = 12;

/** The sweep view of one flow run's trials. */
export async function sweepView(root, { id: runId, params, signal }) {
  const loadHead = async () => {
    const run = await get(`flow-runs/${id(runId)}`, {}, signal);
    return { key: run.state_name ?? run.state, element: () => runHeader(run) };
  };
  return sweepPage(root, { base: `dashboard/flow-runs/${id(runId)}/sweep`, loadHead, params, signal });
}

/** The sweep view of a stored sweep: the trials of its first flow run and of every resume. */
export async function storedSweepView(root, { id: sweepId, params, signal }) {
  const loadHead = async () => {
    const sweep = await get(`sweeps/${id(sweepId)}`, {}, signal);
    return { key: JSON.stringify(sweep.runs), element: () => storedHeader(sweep) };
  };
  return sweepPage(root, { base: `dashboard/sweeps/${id(sweepId)}/sweep`, loadHead, params, signal });
}

async function sweepPage(root, { base, loadHead, params, signal }) {
  let current = params;
  // The header is drawn again only when what it shows changed, so a button in it (cancel)
  // keeps its state while the view refreshes.
  const head = h("div");
  let headKey = null;
  const renderHead = async () => {
    const { key, element } = await loadHead();
    if (key !== headKey) head.replaceChildren(element());
    headKey = key;
  };
  await renderHead();
  const controls = h("div", { class: "filters", "data-testid": "sweep-controls" });
  const chips = h("div", { class: "filter-chips", "data-testid": "sweep-filters" });
  const summaryLine = h("p", { class: "muted", "data-testid": "sweep-summary" });
  const bestSlot = h("div", { "data-testid": "plot-best" });
  const histSlot = h("div", { "data-testid": "plot-histogram" });
  const importanceSlot = h("div", { "data-testid": "plot-importance" });
  const pcSlot = h("div", { "data-testid": "plot-parallel" });
  const scatterSlot = h("div", { class: "small-multiples", "data-testid": "plot-scatter" });
  const curvesSlot = h("div", { "data-testid": "plot-curves" });
  const table = trialsTable(base, signal);
  root.replaceChildren(
    head,
    card(null, controls, chips, summaryLine),
    h("div", { class: "grid" },
      card("Best so far", bestSlot),
      card("Histogram", histSlot),
      card("Parameter importance", importanceSlot,
        h("p", { class: "muted small" },
          "Share of the metric's variance each parameter explains on its own (eta squared over up to ten quantile bins; interactions ignored).")),
    ),
    card("Parallel coordinates", pcSlot),
    card("Metric against each parameter", scatterSlot),
    card("Learning curves", curvesSlot,
      h("p", { class: "muted small" },
        "What the trials reported with sweep.report, step by step: the best trials by the metric, then every pruned one (dashed, a cross where it was stopped), then the rest.")),
    table.element,
  );

  const query = (p) => ({ task: p.task, metric: p.metric, mode: p.mode, filters: p.filters, where: p.where });

  async function refresh(p, { quiet = false } = {}) {
    let data;
    try {
      data = await get(base, { ...query(p), points: 2000, bins: 30 }, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (quiet) return null;
      for (const slot of [bestSlot, histSlot, importanceSlot, pcSlot, scatterSlot]) slot.replaceChildren(errorBox(error));
      summaryLine.replaceChildren(errorBox(error));
      if (!controls.childElementCount) fill(controls, whereForm(p)); // so a bad expression can be fixed here
      return null;
    }
    render(data, p);
    renderCurves(p, quiet);
    return data;
  }

  async function renderCurves(p, quiet) {
    let data;
    try {
      data = await get(`${base}/curves`, { ...query(p), name: p.curve }, signal);
    } catch (error) {
      if (!signal.aborted && !quiet) curvesSlot.replaceChildren(errorBox(error));
      return;
    }
    fill(curvesSlot,
      data.names.length > 1
        ? h("div", { class: "filters" }, select("Reported metric", data.name ?? "", data.names.map((n) => [n, n]),
          (curve) => setParams({ ...p, curve })))
        : null,
      learningCurves({ curves: data.curves, name: data.name ?? "" }));
  }

  let live = false;
  function render(data, p) {
    live = data.live;
    const columns = new Map(data.columns.map((c) => [c.name, c]));
    const metric = data.metric ? columns.get(data.metric) : null;
    const numericResults = data.columns.filter((c) => c.kind === "result" && c.type === "number");
    const filters = parseFilters(p.filters);
    const brushes = new Map(filters.map((f) => [f.column, f]));
    const setFilter = (name, spec) => {
      const next = filters.filter((f) => f.column !== name);
      if (spec) next.push(spec);
      setParams({ ...p, filters: next.length ? JSON.stringify(next) : "", offset: 0 });
    };

    fill(controls,
      Object.keys(data.tasks).length > 1
        ? select("Task", data.task ?? "", Object.entries(data.tasks).map(([n, k]) => [n, `${n} (${formatNumber(k)})`]),
          (task) => setParams({ task, offset: 0 }))
        : null,
      numericResults.length
        ? select("Metric", data.metric ?? "", numericResults.map((c) => [c.name, short(c.name)]),
          (m) => setParams({ ...p, metric: m, mode: "", offset: 0 }))
        : null,
      metric ? select("Goal", data.mode, [["min", "minimize"], ["max", "maximize"]], (mode) => setParams({ ...p, mode })) : null,
      filterForm(data.columns, setFilter),
      whereForm(p),
    );
    fill(chips, ...filters.map((f) => h("span", { class: "chip" }, describeFilter(f),
      h("button", { type: "button", class: "chip-remove", "aria-label": `remove the filter on ${f.column}`,
        onclick: () => setFilter(f.column, null) }, "×"))),
      filters.length > 1 ? h("button", { type: "button", class: "link-button", onclick: () => setParams({ ...p, filters: "", offset: 0 }) }, "clear all filters") : null);
    summaryLine.replaceChildren(
      `${formatNumber(data.matching)} of ${formatNumber(data.total)} trials of ${data.task ?? "–"}`,
      metric ? ` · ${data.mode === "min" ? "minimizing" : "maximizing"} ${data.metric}` : " · no numeric result to plot yet",
      data.points.ids.length < data.matching ? ` · plots show ${formatNumber(data.points.ids.length)} trials evenly sampled` : "",
      data.live ? " · live" : "");

    if (!metric) {
      const none = () => h("p", { class: "muted" }, "No trial has a numeric result yet.");
      for (const slot of [bestSlot, histSlot, importanceSlot, scatterSlot]) slot.replaceChildren(none());
    } else {
      bestSlot.replaceChildren(bestLine({ steps: data.best, metric, mode: data.mode, total: data.total }));
      histSlot.replaceChildren(histogramBars({ histogram: data.histogram, metric }));
      importanceSlot.replaceChildren(importanceBars({ importance: data.importance }));
      const params = data.columns.filter((c) => c.kind === "param").slice(0, MAX_SCATTERS);
      scatterSlot.replaceChildren(...params.map((c) => h("figure", { class: "chart" },
        scatter({ xColumn: c, yColumn: metric, xs: data.points.values[c.name], ys: data.points.values[metric.name], trials: data.points.trial }),
        h("figcaption", { class: "muted small" }, `${short(metric.name)} against ${short(c.name)}${c.log ? " (log axis)" : ""}`))));
    }
    const axes = [...data.columns.filter((c) => c.kind === "param"), ...(metric ? [metric] : [])];
    pcSlot.replaceChildren(parallelCoordinates({ columns: axes, points: data.points, metric, mode: data.mode, brushes, onBrush: setFilter }));
    table.setColumns(data.columns, p);
  }

  // The table's first page is asked for with the plots, not after them: on a sweep the server
  // has not read yet, both wait for its one read of the trials.
  const firstPage = table.ask(current);
  firstPage.catch(() => {}); // its error is shown by the table, once awaited
  await refresh(current);
  await table.load(current, firstPage);

  if (live) {
    poll(async () => {
      await renderHead();
      await refresh(current, { quiet: true });
      await table.reload();
      return live;
    }, LIVE_MS, signal);
  }
  return {
    async update(next) {
      const plotsChanged = ["task", "metric", "mode", "filters", "where", "curve"].some((k) => (next[k] ?? "") !== (current[k] ?? ""));
      current = next;
      if (plotsChanged) await refresh(next);
      await table.load(next);
    },
  };
}

function runHeader(run) {
  return h("div", { class: "page-head-block" },
    h("nav", { class: "crumbs" }, link("#/", "Flow runs"), " / ",
      link(href("/", { flow: run.flow_name }), run.flow_name ?? "?"), " / ",
      link(href(`/flow-runs/${id(run.id)}`), run.name ?? run.id), " / sweep"),
    h("div", { class: "page-head" }, h("h1", null, `Sweep: ${run.name ?? run.id}`), stateBadge(run.state, run.state_name),
      isFinal(run) ? null : cancelButton(run)));
}

function storedHeader(sweep) {
  return h("div", { class: "page-head-block" },
    h("nav", { class: "crumbs" }, link("#/sweeps", "Sweeps"), " / ", sweep.name ?? sweep.id),
    h("div", { class: "page-head" }, h("h1", null, `Sweep: ${sweep.name ?? sweep.id}`)),
    h("p", { class: "muted", "data-testid": "sweep-runs" }, "Flow runs: ",
      sweep.runs.map((r, k) => [k ? ", " : "",
        link(href(`/flow-runs/${id(r.id)}`), r.attempt ? `resume ${r.attempt}` : "first run"), " ",
        r.state ? stateBadge(r.state, r.state_name) : h("span", { class: "muted" }, "not stored yet")])),
    unfinished(sweep) ? resumeCommand(sweep) : null);
}

/** Whether a sweep has trials that did not complete (failed, crashed, cancelled, never run). */
function unfinished(sweep) {
  const done = new Set(["Completed", "Cached", "Pruned"]);
  const last = sweep.runs.at(-1);
  if (!last) return false;
  return last.state_name !== "Completed" || Object.entries(last.task_runs ?? {}).some(([name, n]) => n > 0 && !done.has(name));
}

/** Every stored sweep, newest first: a search's name, when it began, its flow runs. */
export async function sweepsView(root, { params, signal }) {
  const offset = Number(params.offset) || 0;
  const { items, total } = await get("sweeps", { limit: 25, offset }, signal);
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", null, "Sweeps"), h("span", { class: "muted total" }, `${formatNumber(total)} sweeps`)),
    h("div", { class: "table-wrap" }, h("table", { class: "runs", "data-testid": "sweeps" },
      h("thead", null, h("tr", null, ["Sweep", "Id", "Created", "Flow runs"].map((c) => h("th", null, c)))),
      h("tbody", null, items.length ? items.map((sw) => h("tr", { "data-id": sw.id },
        h("td", null, link(href(`/sweeps/${id(sw.id)}`), sw.name ?? sw.id)),
        h("td", { class: "mono" }, sw.id.slice(0, 12)),
        h("td", { class: "nowrap" }, formatTime(sw.created)),
        h("td", { class: "num" }, sw.flow_runs)))
        : h("tr", null, h("td", { colspan: 4, class: "muted empty" }, "No sweeps yet: sweep.optimize(...) makes one."))))),
    pager({ offset, limit: 25, total, onPage: (o) => setParams({ offset: o }) }));
}

export function parseFilters(text) {
  if (!text) return [];
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value.filter((f) => f && typeof f.column === "string") : [];
  } catch {
    return [];
  }
}

function describeFilter(f) {
  if (f.in) return `${short(f.column)} in {${f.in.join(", ")}}`;
  const lo = f.min === undefined || f.min === null ? "" : `${formatScalar(f.min)} ≤ `;
  const hi = f.max === undefined || f.max === null ? "" : ` ≤ ${formatScalar(f.max)}`;
  return `${lo}${short(f.column)}${hi}`;
}

/** A keyboard-friendly way to add a filter: column, then a range or categories. */
function filterForm(columns, setFilter) {
  if (!columns.length) return null;
  const choose = h("select", { "aria-label": "filter column" }, columns.map((c) => h("option", { value: c.name }, short(c.name))));
  const lo = h("input", { type: "text", size: 8, placeholder: "min", "aria-label": "minimum" });
  const hi = h("input", { type: "text", size: 8, placeholder: "max", "aria-label": "maximum" });
  const cats = h("input", { type: "text", size: 14, placeholder: "a, b", "aria-label": "categories, comma-separated" });
  const byName = new Map(columns.map((c) => [c.name, c]));
  const sync = () => {
    const numeric = byName.get(choose.value)?.type === "number";
    lo.hidden = hi.hidden = !numeric;
    cats.hidden = numeric;
  };
  choose.addEventListener("change", sync);
  sync();
  const form = h("form", { class: "filter filter-form", "data-testid": "filter-form", onsubmit: (event) => {
    event.preventDefault();
    const column = byName.get(choose.value);
    if (!column) return;
    if (column.type === "number") {
      const spec = { column: column.name };
      if (lo.value.trim() !== "" && Number.isFinite(Number(lo.value))) spec.min = Number(lo.value);
      if (hi.value.trim() !== "" && Number.isFinite(Number(hi.value))) spec.max = Number(hi.value);
      if (spec.min === undefined && spec.max === undefined) return;
      setFilter(column.name, spec);
    } else {
      const picked = cats.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (picked.length) setFilter(column.name, { column: column.name, in: picked });
    }
  } }, h("span", null, "Filter"), choose, lo, hi, cats, h("button", { type: "submit" }, "Add"));
  return form;
}

/** A where expression, as on the command line: `param.kernel == "rbf" and result.loss < 0.3`. */
function whereForm(p) {
  const input = h("input", { type: "text", size: 36, value: p.where ?? "", "aria-label": "where expression",
    placeholder: 'param.kernel == "rbf" and result.loss < 0.3' });
  return h("form", { class: "filter filter-form", "data-testid": "where-form", onsubmit: (event) => {
    event.preventDefault();
    setParams({ ...p, where: input.value.trim(), offset: 0 });
  } }, h("span", null, "Where"), input, h("button", { type: "submit" }, "Apply"));
}

/** The trials table: one column per parameter and result field; columns can be hidden. */
function trialsTable(base, signal) {
  const thead = h("thead");
  const tbody = h("tbody");
  const total = h("span", { class: "muted total", "data-testid": "trial-total" });
  const chooser = h("details", { class: "column-chooser" }, h("summary", null, "Columns"));
  const pagerSlot = h("div");
  const element = h("section", { class: "card", id: "trials" },
    h("div", { class: "page-head" }, h("h2", null, "Trials"), total, chooser),
    h("div", { class: "table-wrap" }, h("table", { class: "runs tasks", "data-testid": "trials" }, thead, tbody)),
    pagerSlot);
  let params = {};
  let columns = [];

  const hidden = () => new Set((params.hide ?? "").split(",").filter(Boolean));
  const shown = () => columns.filter((c) => !hidden().has(c.name));

  function renderChooser() {
    const off = hidden();
    chooser.replaceChildren(h("summary", null, "Columns"), h("div", { class: "chooser-list" }, columns.map((c) =>
      h("label", null, h("input", { type: "checkbox", checked: !off.has(c.name), onchange: (e) => {
        const next = hidden();
        if (e.target.checked) next.delete(c.name); else next.add(c.name);
        setParams({ ...params, hide: [...next].join(",") });
      } }), " ", short(c.name)))));
    chooser.open = chooser.dataset.open === "1";
    chooser.addEventListener("toggle", () => { chooser.dataset.open = chooser.open ? "1" : ""; });
  }

  function sortHeader(label, key) {
    const order = params.order ?? "";
    const arrow = order === key ? " ▲" : order === `-${key}` ? " ▼" : "";
    const next = order === key ? `-${key}` : key;
    return h("th", { "aria-sort": arrow ? (arrow === " ▲" ? "ascending" : "descending") : null },
      h("button", { type: "button", class: "sort", title: `sort by ${key}`, onclick: () => setParams({ ...params, order: next, offset: 0 }) }, label, arrow));
  }

  const ask = (p) => get(`${base}/trials`, { task: p.task, filters: p.filters, where: p.where, order_by: p.order, limit: PAGE, offset: Number(p.offset) || 0 }, signal);

  async function reload(asked = null) {
    const offset = Number(params.offset) || 0;
    let page;
    try {
      page = await (asked ?? ask(params));
    } catch (error) {
      if (signal.aborted) throw error;
      tbody.replaceChildren(h("tr", null, h("td", { colspan: 99 }, errorBox(error))));
      return;
    }
    const visible = shown();
    thead.replaceChildren(h("tr", null, sortHeader("Trial", "trial"), sortHeader("State", "state"),
      visible.map((c) => sortHeader(short(c.name), c.name)), sortHeader("Duration", "duration"), h("th", null, "")));
    total.textContent = `${formatNumber(page.matching)} of ${formatNumber(page.total)} trials match`;
    tbody.replaceChildren(...(page.rows.length ? page.rows.map((r) => h("tr", { "data-id": r.id, "data-state": r.state_name ?? r.state },
      h("td", { class: "num" }, h("a", { href: href(`/task-runs/${id(r.id)}`) }, r.trial)),
      h("td", null, stateBadge(r.state, r.state_name)),
      visible.map((c) => h("td", { class: c.type === "number" ? "num" : "clip", "data-column": c.name },
        c.type === "number" ? formatScalar(r.values[c.name] ?? null) : r.values[c.name] ?? "")),
      h("td", { class: "num nowrap" }, formatDuration(r.duration)),
      h("td", null, copyButton(r, columns)))) :
      [h("tr", null, h("td", { colspan: visible.length + 4, class: "muted empty" }, "No trials match."))]));
    pagerSlot.replaceChildren(pager({ offset, limit: PAGE, total: page.matching, onPage: (o) => setParams({ ...params, offset: o }) }));
    element.dataset.loaded = JSON.stringify(params);
  }

  return {
    element,
    reload,
    setColumns(next) {
      columns = next;
      renderChooser();
    },
    // The first page of `next`, asked for now and drawn by `load(next, asked)`.
    ask,
    load(next, asked = null) {
      params = next;
      renderChooser();
      return reload(asked);
    },
  };
}

/** Copy a trial's parameters as JSON, ready to paste into a call. */
function copyButton(row, columns) {
  const parameters = {};
  for (const c of columns) {
    if (c.kind !== "param") continue;
    const value = row.values[c.name];
    if (value === undefined || value === null) continue;
    parameters[c.name.slice("param.".length)] = c.type === "category" ? parseCategory(value) : value;
  }
  const text = JSON.stringify(parameters);
  const button = h("button", { type: "button", class: "link-button", title: text, "data-parameters": text, onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "copied";
    } catch {
      window.getSelection()?.selectAllChildren(button);
      button.textContent = text;
    }
  } }, "copy parameters");
  return button;
}

// A category is shown as its JSON text ("rbf" stays rbf; [1, 2] stays [1,2]); copy the value.
function parseCategory(text) {
  try {
    const value = JSON.parse(text);
    return typeof value === "string" ? text : value;
  } catch {
    return text;
  }
}
