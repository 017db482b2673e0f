// One flow run: parameters, counts by state, throughput, subflows, and its task runs, paged,
// filtered and sorted by the server (a flow run may hold 200,000 of them).

import { cancelButton } from "./actions.js";
import { get, id } from "./api.js";
import { artifactsCard } from "./artifacts.js";
import { throughputChart } from "./chart.js";
import {
  card, errorBox, fill, formatDuration, formatNumber, formatScalar, formatTime, h, isFinal, keyValues,
  link, pager, progressBar, select, stateBadge, stateGroup, summary,
} from "./dom.js";
import { href, poll, setParams } from "./router.js";

const PAGE = 50;
const LIVE_MS = 2000;

export async function flowRunView(root, { id: runId, params, signal }) {
  const path = `flow-runs/${id(runId)}`;
  // Every request starts now; the page is shown once the run, the facets and the first page of
  // task runs are in, and the chart and subflows fill in as they arrive.
  const series = get(`${path}/throughput`, { buckets: 60 }, signal);
  const subflows = get(`dashboard/${path}/subflows`, {}, signal);
  const firstPage = fetchPage(path, params, signal);
  const [run, facets, tags] = await Promise.all([
    get(path, {}, signal), get(`dashboard/${path}/facets`, {}, signal), get(`${path}/task-tags`, {}, signal),
  ]);
  facets.tags = tags;

  const head = h("div");
  const countsSlot = h("div");
  const chartSlot = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const subflowSlot = h("div");
  const table = taskTable(path, facets, signal);
  const artifacts = artifactsCard(path, signal, { showRun: true });
  root.replaceChildren(
    head,
    h("div", { class: "grid" },
      card("Parameters", keyValues(run.parameters)),
      card("Task runs", countsSlot)),
    card("Throughput (task runs finished per second)", chartSlot),
    subflowSlot,
    artifacts,
    table.element,
  );

  // The header is drawn again only when what it shows changed, so its cancel button keeps its
  // state while the page refreshes.
  let headKey = null;
  function renderRun(run) {
    const key = JSON.stringify([run.state_name, run.message, run.end_time, run.duration, run.error]);
    if (key !== headKey) head.replaceChildren(header(run));
    headKey = key;
    countsSlot.replaceChildren(counts(run));
    table.setStates(Object.keys(run.task_runs ?? {}));
  }
  const showError = (slot) => (error) => { if (!signal.aborted) slot.replaceChildren(errorBox(error)); };
  const renderChart = (s) => chartSlot.replaceChildren(throughputChart(s));

  renderRun(run);
  series.then(renderChart, showError(chartSlot));
  subflows.then((runs) => subflowSlot.replaceChildren(runs.length ? card("Subflows", subflowTable(runs)) : ""),
    showError(subflowSlot));
  await table.load(params, firstPage);

  if (!isFinal(run)) {
    poll(async () => {
      const [fresh, freshSeries] = await Promise.all([
        get(path, {}, signal),
        get(`${path}/throughput`, { buckets: 60 }, signal),
      ]);
      renderRun(fresh);
      renderChart(freshSeries);
      await Promise.all([table.reload(), artifacts.refresh()]);
      return !isFinal(fresh);
    }, LIVE_MS, signal);
  }
  return { update: (params) => table.load(params) };
}

function fetchPage(path, params, signal) {
  return get(`${path}/task-runs`, {
    state: params.state, task_name: params.task, tags: params.tag, order_by: params.order,
    limit: PAGE, offset: Number(params.offset) || 0,
  }, signal);
}

function header(run) {
  const parent = run.parent_flow_run_id
    ? h("span", null, "subflow of ", link(href(`/flow-runs/${id(run.parent_flow_run_id)}`), "flow run " + run.parent_flow_run_id.slice(0, 8)),
      run.parent_task_run_id ? [" (", link(href(`/task-runs/${id(run.parent_task_run_id)}`), "task run"), ")"] : null)
    : null;
  return h("div", { class: "page-head-block" },
    h("nav", { class: "crumbs" }, link("#/", "Flow runs"), " / ",
      link(href("/", { flow: run.flow_name }), run.flow_name ?? "?"), " / ", run.name ?? run.id),
    h("div", { class: "page-head" }, h("h1", null, run.name ?? run.id), stateBadge(run.state, run.state_name),
      h("a", { href: href(`/flow-runs/${id(run.id)}/sweep`), class: "button-link", "data-testid": "sweep-link" }, "Sweep view"),
      isFinal(run) ? null : cancelButton(run)),
    h("dl", { class: "meta" },
      meta("Flow", run.flow_name), meta("Flow run id", h("span", { class: "mono" }, run.id)),
      meta("Started", formatTime(run.start_time)), meta("Ended", formatTime(run.end_time)),
      meta("Duration", formatDuration(run.duration)), parent ? meta("Parent", parent) : null),
    run.message ? h("p", { class: "message" }, run.message) : null,
    run.error ? errorDetails(run.error) : null);
}

const meta = (term, value) => h("div", null, h("dt", null, term), h("dd", null, value ?? "–"));

export function errorDetails(error) {
  return h("div", { class: "error-details" },
    h("p", null, h("strong", { class: "error-type" }, error.type ?? "Error"), ": ", h("span", { class: "error-message" }, error.message ?? "")),
    error.traceback ? h("pre", { class: "traceback" }, error.traceback) : null);
}

function counts(run) {
  const entries = Object.entries(run.task_runs ?? {});
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return h("div", null,
    h("p", { class: "big-number" }, formatNumber(total), h("span", { class: "muted small" }, " task runs")),
    progressBar(run.task_runs),
    h("ul", { class: "chips", "data-testid": "state-counts" }, entries.map(([name, n]) =>
      h("li", null, h("a", { href: href(`/flow-runs/${id(run.id)}`, { state: name }), class: `chip state-${stateGroup(name)}`, title: `show the ${name} task runs` },
        name, " ", h("span", { class: "chip-count" }, formatNumber(n)))))));
}

function subflowTable(runs) {
  return h("table", { class: "runs" },
    h("thead", null, h("tr", null, ["Flow run", "Flow", "State", "Duration", "Task runs"].map((c) => h("th", null, c)))),
    h("tbody", null, runs.map((r) => h("tr", null,
      h("td", null, link(href(`/flow-runs/${id(r.id)}`), r.name ?? r.id)),
      h("td", null, r.flow_name ?? ""),
      h("td", null, stateBadge(r.state, r.state_name)),
      h("td", { class: "num" }, formatDuration(r.duration)),
      h("td", { class: "wide" }, progressBar(r.task_runs))))));
}

/** The task-run table: filters, sortable headers and pager, all driven by the hash's params. */
function taskTable(path, facets, signal) {
  const filters = h("div", { class: "filters" });
  const thead = h("thead");
  const tbody = h("tbody");
  const total = h("span", { class: "muted total", "data-testid": "task-total" });
  const pagerSlot = h("div");
  const element = h("section", { class: "card", id: "task-runs" },
    h("div", { class: "page-head" }, h("h2", null, "Task runs"), total),
    filters,
    h("div", { class: "table-wrap" }, h("table", { class: "runs tasks", "data-testid": "task-runs" }, thead, tbody)),
    pagerSlot);
  const keys = facets.result_keys;
  // Sortable columns: [label, order key or null]. Results are one column per field when they
  // are dicts ("loss", "accuracy"), else one "Result" column.
  const columns = [
    ["#", "map_index"], ["Task run", null], ["Task", "task_name"], ["State", "state"],
    ["Duration", "duration"], ["Started", "start_time"],
    ...(keys.length ? keys.map((k) => [k, `result.${k}`]) : [["Result", "result"]]),
    ["Parameters", null],
  ];
  let params = {};
  let stateNames = [];

  async function reload(prefetched = null) {
    const offset = Number(params.offset) || 0;
    let page;
    try {
      page = await (prefetched ?? fetchPage(path, params, signal));
    } catch (error) {
      if (signal.aborted) throw error;
      tbody.replaceChildren(h("tr", null, h("td", { colspan: columns.length }, errorBox(error))));
      return;
    }
    renderFilters();
    total.textContent = `${formatNumber(page.total)} task run${page.total === 1 ? "" : "s"} match`;
    tbody.replaceChildren(...(page.items.length ? page.items.map(row) :
      [h("tr", null, h("td", { colspan: columns.length, class: "muted empty" }, "No task runs match."))]));
    pagerSlot.replaceChildren(pager({ offset, limit: PAGE, total: page.total, onPage: (o) => setParams({ ...params, offset: o }) }));
    element.dataset.loaded = JSON.stringify(params);
  }

  function renderFilters() {
    fill(filters,
      select("State", params.state ?? "", [["", "All states"],
        ...[...new Set([...stateNames, params.state].filter(Boolean))].map((n) => [n, n])],
        (state) => setParams({ ...params, state, offset: 0 })),
      select("Task", params.task ?? "", [["", "All tasks"], ...facets.task_names.map((n) => [n, n])],
        (task) => setParams({ ...params, task, offset: 0 })),
      facets.tags.length || params.tag
        ? select("Tag", params.tag ?? "", [["", "All tags"], ...[...new Set([...facets.tags, params.tag].filter(Boolean))].map((t) => [t, t])],
          (tag) => setParams({ ...params, tag, offset: 0 }))
        : null,
      params.order ? h("button", { type: "button", class: "link-button", onclick: () => setParams({ ...params, order: "", offset: 0 }) }, "clear sort") : null,
    );
    thead.replaceChildren(h("tr", null, columns.map(([label, key]) => key ? sortHeader(label, key) : h("th", null, label))));
  }

  function sortHeader(label, key) {
    const order = params.order ?? "";
    const arrow = order === key ? " ▲" : order === `-${key}` ? " ▼" : "";
    const next = order === key ? `-${key}` : key;
    return h("th", { "aria-sort": arrow ? (arrow === " ▲" ? "ascending" : "descending") : null },
      h("button", { type: "button", class: "sort", title: `sort by ${key}`, onclick: () => setParams({ ...params, order: next, offset: 0 }) }, label, arrow));
  }

  function row(t) {
    const resultCells = t.error
      ? [h("td", { colspan: keys.length || 1, class: "error-cell" }, h("strong", null, t.error.type ?? "Error"), ": ", t.error.message ?? "")]
      : keys.length
        ? keys.map((k) => h("td", { class: "num" }, t.result && typeof t.result === "object" ? formatScalar(t.result[k] ?? "") : ""))
        : [h("td", { class: "clip", title: summary(t.result) }, summary(t.result))];
    return h("tr", { "data-state": t.state_name ?? t.state, "data-id": t.id },
      h("td", { class: "num muted" }, t.map_index ?? ""),
      h("td", null, h("a", { href: href(`/task-runs/${id(t.id)}`), class: t.name ? null : "mono" }, t.name ?? t.id)),
      h("td", null, t.task_name ?? ""),
      h("td", null, stateBadge(t.state, t.state_name)),
      h("td", { class: "num nowrap" }, formatDuration(t.duration)),
      h("td", { class: "nowrap" }, formatTime(t.start_time)),
      resultCells,
      h("td", { class: "clip", title: summary(t.parameters) }, summary(t.parameters)));
  }

  return {
    element,
    reload: () => reload(),
    setStates(names) {
      stateNames = names;
    },
    load(next, prefetched = null) {
      params = next;
      return reload(prefetched);
    },
  };
}
