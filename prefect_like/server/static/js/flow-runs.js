// The flow runs page: newest first, filtered by state, flow name and tag, live while runs go on.

import { get, id } from "./api.js";
import {
  formatDuration, formatNumber, formatTime, h, isFinal, link, pager, progressBar, select, stateBadge,
  STATE_TYPES,
} from "./dom.js";
import { href, poll, setParams } from "./router.js";

const PAGE = 25;
const LIVE_MS = 2000;

export async function flowRunsView(root, { params, signal }) {
  const filters = h("div", { class: "filters" });
  const total = h("span", { class: "muted total" });
  const tbody = h("tbody");
  const pagerSlot = h("div");
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", null, "Flow runs"), total),
    filters,
    h("div", { class: "table-wrap" }, h("table", { class: "runs", "data-testid": "flow-runs" },
      h("thead", null, h("tr", null,
        ["Flow run", "Flow", "State", "Started", "Duration", "Task runs"].map((c) => h("th", null, c)))),
      tbody)),
    pagerSlot,
  );

  let current = params;
  const [flowNames, flowTags] = await Promise.all([
    get("dashboard/flow-names", {}, signal), get("dashboard/flow-tags", {}, signal),
  ]);

  async function load() {
    const query = {
      state: current.state, flow_name: current.flow, tags: current.tag, limit: PAGE, offset: Number(current.offset) || 0,
    };
    const { items: runs, total: count } = await get("flow-runs", query, signal);
    total.textContent = `${formatNumber(count)} flow run${count === 1 ? "" : "s"}`;
    tbody.replaceChildren(...(runs.length ? runs.map(row) :
      [h("tr", null, h("td", { colspan: 6, class: "muted empty" }, "No flow runs match."))]));
    pagerSlot.replaceChildren(pager({
      offset: query.offset, limit: PAGE, total: count,
      onPage: (offset) => setParams({ ...current, offset }),
    }));
    return runs;
  }

  function renderFilters() {
    filters.replaceChildren(
      select("State", current.state ?? "", ["", ...STATE_TYPES].map((s) => [s, s ? s[0] + s.slice(1).toLowerCase() : "All states"]),
        (state) => setParams({ ...current, state, offset: 0 })),
      select("Flow", current.flow ?? "", [["", "All flows"], ...flowNames.map((n) => [n, n])],
        (flow) => setParams({ ...current, flow, offset: 0 })),
      flowTags.length || current.tag
        ? select("Tag", current.tag ?? "", [["", "All tags"], ...[...new Set([...flowTags, current.tag].filter(Boolean))].map((t) => [t, t])],
          (tag) => setParams({ ...current, tag, offset: 0 }))
        : "",
    );
  }

  renderFilters();
  await load();
  // Always live: new runs appear at the top, running ones move their bars.
  poll(async () => { await load(); }, LIVE_MS, signal);

  return {
    async update(params) {
      current = params;
      renderFilters();
      await load();
    },
  };
}

function row(run) {
  return h("tr", { "data-state": run.state },
    h("td", null, link(href(`/flow-runs/${id(run.id)}`), run.name || run.id),
      h("div", { class: "muted small mono" }, run.id.slice(0, 8))),
    h("td", null, run.flow_name ?? "",
      (run.tags ?? []).length ? h("div", { class: "tags", "data-testid": "flow-run-tags" },
        ...run.tags.map((t) => h("span", { class: "tag" }, t))) : ""),
    h("td", null, stateBadge(run.state, run.state_name)),
    h("td", { class: "nowrap" }, formatTime(run.start_time)),
    h("td", { class: "nowrap num" }, isFinal(run) ? formatDuration(run.duration) : liveDuration(run)),
    h("td", { class: "wide" }, progressBar(run.task_runs)),
  );
}

function liveDuration(run) {
  if (!run.start_time) return "–";
  return `${formatDuration((Date.now() - Date.parse(run.start_time)) / 1000)}…`;
}
