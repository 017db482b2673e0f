// Hash routes (#/flow-runs/<id>?state=failed), so the server serves one index.html at "/".

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: Object.fromEntries(new URLSearchParams(query)) };
}

/** The hash for a path and its parameters (empty parameters left out). */
export function href(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "" && value !== 0) query.set(key, value);
  }
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/** Change the parameters of the current page (the router calls the view's update()). */
export function setParams(params) {
  location.hash = href(parseHash().path, params);
}

/**
 * Call fn every `interval` ms until it returns false or the signal aborts; no overlap, and it
 * pauses while the tab is hidden.
 */
export function poll(fn, interval, signal) {
  const indicator = document.getElementById("live");
  const tick = async () => {
    if (signal.aborted) return;
    let again = true;
    if (!document.hidden) {
      try {
        again = (await fn()) !== false;
      } catch (error) {
        if (signal.aborted) return;
        console.warn("live update failed", error);
      }
    }
    if (indicator) indicator.hidden = !again;
    if (again && !signal.aborted) setTimeout(tick, interval);
  };
  if (indicator) indicator.hidden = false;
  signal.addEventListener("abort", () => { if (indicator) indicator.hidden = true; });
  setTimeout(tick, interval);
}
