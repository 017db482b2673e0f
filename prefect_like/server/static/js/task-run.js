// One task run: parameters, result, error and traceback, state history, logs.

import { get, id } from "./api.js";
import { artifactsCard } from "./artifacts.js";
import { card, formatDuration, formatTime, h, isFinal, jsonBlock, link, stateBadge } from "./dom.js";
import { errorDetails } from "./flow-run.js";
import { href, poll } from "./router.js";

const LIVE_MS = 2000;

export async function taskRunView(root, { id: runId, signal }) {
  const path = `task-runs/${id(runId)}`;

  async function render() {
    const [run, { items: logs }] = await Promise.all([get(path, {}, signal), get(`${path}/logs`, {}, signal)]);
    const flow = run.flow_run_id ? await get(`flow-runs/${id(run.flow_run_id)}`, {}, signal).catch(() => null) : null;
    root.replaceChildren(
      header(run, flow),
      run.error ? card("Error", errorDetails(run.error)) : null,
      h("div", { class: "grid" }, card("Parameters", jsonBlock(run.parameters)), card("Result", jsonBlock(run.result))),
      artifactsCard(path, signal),
      card("State history", history(run.states ?? [])),
      card("Logs", logTable(logs)),
    );
    return run;
  }

  const run = await render();
  if (!isFinal(run)) poll(async () => !isFinal(await render()), LIVE_MS, signal);
}

function header(run, flow) {
  const flowHref = href(`/flow-runs/${id(run.flow_run_id ?? "")}`);
  return h("div", { class: "page-head-block" },
    h("nav", { class: "crumbs" }, link("#/", "Flow runs"), " / ",
      run.flow_run_id ? link(flowHref, flow?.name ?? run.flow_run_id.slice(0, 8)) : "?", " / ", run.name ?? run.id),
    h("div", { class: "page-head" },
      h("h1", null, run.task_name ?? run.name, run.map_index === null || run.map_index === undefined ? null : h("span", { class: "muted" }, ` [${run.map_index}]`)),
      stateBadge(run.state, run.state_name)),
    h("dl", { class: "meta" },
      run.name ? meta("Task run", run.name) : null, meta("Map index", run.map_index ?? "–"),
      meta("Task run id", h("span", { class: "mono" }, run.id)), meta("Runs", run.run_count ?? "–"),
      meta("Started", formatTime(run.start_time)), meta("Ended", formatTime(run.end_time)),
      meta("Duration", formatDuration(run.duration))),
    run.message ? h("p", { class: "message" }, run.message) : null);
}

const meta = (term, value) => h("div", null, h("dt", null, term), h("dd", null, value ?? "–"));

function history(states) {
  if (!states.length) return h("p", { class: "muted" }, "none");
  const t0 = Date.parse(states[0].timestamp);
  return h("table", { class: "runs" },
    h("thead", null, h("tr", null, ["State", "Time", "Since first", "Message"].map((c) => h("th", null, c)))),
    h("tbody", null, states.map((s) => {
      const type = s.state ?? s.type;
      const name = s.state_name ?? s.name;
      return h("tr", null,
        h("td", null, stateBadge(type, name)),
        h("td", { class: "nowrap" }, formatTime(s.timestamp)),
        h("td", { class: "num nowrap" }, `+${formatDuration((Date.parse(s.timestamp) - t0) / 1000)}`),
        h("td", { class: "pre-wrap" }, s.message ?? ""));
    })));
}

function logTable(logs) {
  if (!logs.length) return h("p", { class: "muted" }, "No log lines.");
  return h("table", { class: "runs logs" },
    h("thead", null, h("tr", null, ["Time", "Level", "Message"].map((c) => h("th", null, c)))),
    h("tbody", null, logs.map((line) => h("tr", { class: `log-${String(line.level ?? "").toLowerCase()}` },
      h("td", { class: "nowrap mono" }, formatTime(line.timestamp)),
      h("td", { class: "level" }, line.level ?? ""),
      h("td", { class: "pre-wrap mono" }, line.message ?? "")))));
}
