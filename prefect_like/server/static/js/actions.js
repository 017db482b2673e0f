// What the dashboard lets a user do, beyond reading: cancel a running flow run, and the command
// that reruns what a sweep did not complete.
//
// Cancelling is POST /api/flow-runs/{id}/cancel, the request `prefect-like runs cancel ID` makes:
// the flow run's process (a worker's, or a flow started from a terminal that sends its events to
// this server) sees it within seconds and ends the run CANCELLED as Ctrl-C would. It takes two
// clicks (the button asks to be pressed again), never a browser dialog.

import { id, post } from "./api.js";
import { h } from "./dom.js";

/** "Cancel run", then "Cancel it? (click again)", then the server's answer. */
export function cancelButton(run, onRequested = () => {}) {
  const status = h("span", { class: "muted small", role: "status", "data-testid": "cancel-status" });
  let armed = false;
  const button = h("button", { type: "button", class: "danger", "data-testid": "cancel-run", onclick: async () => {
    if (!armed) {
      armed = true;
      button.textContent = "Cancel it? (click again)";
      return;
    }
    button.disabled = true;
    try {
      const answer = await post(`flow-runs/${id(run.id)}/cancel`, { reason: "cancelled from the dashboard" });
      status.textContent = answer.cancelling
        ? " Cancelling: the run's process ends it within seconds."
        : ` ${answer.state_name ?? answer.state}.`;
      onRequested(answer);
    } catch (error) {
      status.textContent = ` Could not cancel: ${error.message}`;
      button.disabled = false;
      armed = false;
      button.textContent = "Cancel run";
    }
  } }, "Cancel run");
  return h("span", { class: "actions" }, button, status);
}

/** The command that reruns a sweep's trials that did not complete, with a copy button. */
export function resumeCommand(sweep) {
  const command = `prefect-like sweeps resume ${sweep.id}`;
  const code = h("code", { "data-testid": "resume-command" }, command);
  const copy = h("button", { type: "button", class: "link-button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(command);
      copy.textContent = "copied";
    } catch {
      window.getSelection()?.selectAllChildren(code);
    }
  } }, "copy");
  return h("p", { class: "muted small" }, "Rerun what did not complete, in a new flow run of this sweep: ", code, " ", copy);
}
