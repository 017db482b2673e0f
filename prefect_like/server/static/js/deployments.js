// The deployments page: deployments and their schedules, the runs coming up, the latest runs of
// deployments, and the workers with when each was last seen; live while it is open.
//
// Everything is read from the deployment routes (GET /api/deployments, /api/deployment-runs,
// /api/workers). "Run now" is POST /api/deployments/{name}/runs with the deployment's own
// parameters, the request `prefect-like deployment run NAME` makes.

import { get, id, post } from "./api.js";
import { card, formatTime, h, link, stateBadge } from "./dom.js";
import { poll } from "./router.js";

const LIVE_MS = 2000;

function schedule(d) {
  const parts = d.schedules.map((s) => {
    const text = s.kind === "cron" ? `cron ${s.cron} (${s.timezone})`
      : s.kind === "interval" ? `every ${s.interval} s` : `once`;
    return s.active ? text : `${text} (inactive)`;
  });
  return parts.join(", ") || "—";
}

function table(testid, columns, rows, empty) {
  return h("div", { class: "table-wrap" }, h("table", { class: "runs", "data-testid": testid },
    h("thead", null, h("tr", null, columns.map((c) => h("th", null, c)))),
    h("tbody", null, rows.length ? rows
      : h("tr", null, h("td", { colspan: columns.length, class: "muted empty" }, empty)))));
}

function runNow(d, status) {
  return h("button", { type: "button", "data-testid": "run-deployment", onclick: async (event) => {
    event.target.disabled = true;
    try {
      const run = await post(`deployments/${id(d.name)}/runs`, { parameters: {} });
      status.replaceChildren("Made flow run ", link(`#/flow-runs/${id(run.id)}`, run.id.slice(0, 12)),
        ` of ${d.name}; a worker of pool ${d.work_pool} runs it.`);
    } catch (error) {
      status.textContent = `Could not run ${d.name}: ${error.message}`;
    } finally {
      event.target.disabled = false;
    }
  } }, "Run now");
}

function runRow(r) {
  return h("tr", null,
    h("td", null, link(`#/flow-runs/${id(r.id)}`, r.id.slice(0, 12))),
    h("td", null, r.deployment ?? "?"),
    h("td", null, formatTime(r.scheduled_time)),
    h("td", null, stateBadge(r.state, r.state_name)),
    h("td", null, String(r.attempt)),
    h("td", null, r.worker ?? ""));
}

export async function deploymentsView(root, { signal }) {
  const status = h("p", { class: "muted small", role: "status", "data-testid": "deployment-status" });
  const slots = { deployments: h("div"), upcoming: h("div"), recent: h("div"), workers: h("div") };
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", null, "Deployments")),
    status,
    card("Deployments", slots.deployments),
    card("Upcoming runs", slots.upcoming),
    card("Latest runs of deployments", slots.recent),
    card("Workers", slots.workers),
  );

  async function load() {
    const [deployments, upcoming, recent, workers] = await Promise.all([
      get("deployments", {}, signal),
      get("deployment-runs", { upcoming: true, limit: 20 }, signal),
      get("deployment-runs", { limit: 20 }, signal),
      get("workers", {}, signal),
    ]);
    slots.deployments.replaceChildren(table("deployments",
      ["Name", "Flow", "Pool", "Schedule", "Next run", "Paused", ""],
      deployments.map((d) => h("tr", null,
        h("td", null, d.name), h("td", null, d.flow_name), h("td", null, d.work_pool),
        h("td", null, schedule(d)), h("td", null, formatTime(d.next_run)),
        h("td", null, d.paused ? "paused" : ""), h("td", null, runNow(d, status)))),
      "No deployments yet: prefect-like deploy FILE.py:FLOW --name N --pool P"));
    const columns = ["Flow run", "Deployment", "Scheduled", "State", "Attempt", "Worker"];
    slots.upcoming.replaceChildren(table("upcoming-runs", columns, upcoming.map(runRow), "Nothing scheduled."));
    slots.recent.replaceChildren(table("recent-runs", columns, recent.map(runRow), "No runs yet."));
    slots.workers.replaceChildren(table("workers",
      ["Pool", "Worker", "Host", "Last seen", "Runs", "Status"],
      workers.map((w) => h("tr", null,
        h("td", null, w.work_pool), h("td", null, w.name), h("td", null, w.host ?? ""),
        h("td", null, `${w.seconds_since_seen} s ago`), h("td", null, String(w.running ?? 0)),
        h("td", null, w.online ? "online" : "offline"))),
      "No workers yet: prefect-like worker start --pool P"));
  }

  await load();
  poll(async () => { await load(); }, LIVE_MS, signal);
  return undefined;
}
