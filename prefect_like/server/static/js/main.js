// The dashboard's entry point: map the hash to a view, and keep one view alive at a time.
//
// A view is `async (root, {id, params, signal}) => ({update(params)} | undefined)`. It renders
// into root; the signal aborts its fetches and live polling when the user navigates away. When
// only the query changes (a filter, a sort, a page), the router calls update() instead, so the
// view refreshes its table without reloading the rest of the page.

import { get } from "./api.js";
import { deploymentsView } from "./deployments.js";
import { errorBox, h, useStates } from "./dom.js";
import { flowRunView } from "./flow-run.js";
import { flowRunsView } from "./flow-runs.js";
import { parseHash } from "./router.js";
import { storedSweepView, sweepView, sweepsView } from "./sweep.js";
import { taskRunView } from "./task-run.js";

const ROUTES = [
  [/^\/?$/, flowRunsView],
  [/^\/flow-runs\/([^/]+)$/, flowRunView],
  [/^\/flow-runs\/([^/]+)\/sweep$/, sweepView],
  [/^\/sweeps\/?$/, sweepsView],
  [/^\/sweeps\/([^/]+)$/, storedSweepView],
  [/^\/task-runs\/([^/]+)$/, taskRunView],
  [/^\/deployments\/?$/, deploymentsView],
];

let current = null; // {path, controller, view}

async function route() {
  const { path, params } = parseHash();
  if (current && current.path === path && current.view?.update) {
    current.view.update(params);
    return;
  }
  current?.controller.abort();
  const controller = new AbortController();
  const state = { path, controller, view: null };
  current = state;
  const root = document.getElementById("app");
  const match = ROUTES.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  if (!match) {
    root.replaceChildren(h("div", { class: "error-box" }, "No such page: ", path));
    return;
  }
  const [m, view] = match;
  try {
    state.view = await view(root, { id: m[1] && decodeURIComponent(m[1]), params, signal: controller.signal });
  } catch (error) {
    if (!controller.signal.aborted) root.replaceChildren(errorBox(error));
  }
}

async function start() {
  try {
    useStates(await get("states"));
  } catch (error) {
    document.getElementById("app").replaceChildren(errorBox(error));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
