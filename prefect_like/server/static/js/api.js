// The tracking API, as the dashboard calls it: JSON out, errors as ApiError. Reads are GET;
// the one action the page takes (cancelling a flow run) is a POST.
//
// A server started with PREFECT_LIKE_API_KEY answers 401 to every /api route without it. The
// dashboard then shows a form in the page (never window.prompt, which a headless or embedded
// browser may not show) asking for the key once, keeps it in this browser's localStorage for
// this origin only, and sends it as `Authorization: Bearer <key>` (never in a URL, so it stays
// out of logs and history). A key the server refuses is forgotten and asked for again. The page
// itself (HTML, JS, CSS) holds no data and is served without a key.

const KEY_ITEM = "prefect-like-api-key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

function storedKey() {
  try {
    return localStorage.getItem(KEY_ITEM) || "";
  } catch {
    return "";
  }
}

let pendingKey = null; // one form for all the requests that got a 401 at once

/**
 * Ask the user for the server's API key in a form over the page; resolves true once a key is
 * given (and stored), false if the user declines. `refused` says the last key did not work.
 */
function askForKey(refused) {
  pendingKey ??= new Promise((resolve) => {
    const input = document.createElement("input");
    Object.assign(input, { type: "password", name: "api-key", autocomplete: "current-password", required: true });
    input.setAttribute("aria-label", "API key");
    const note = document.createElement("p");
    note.className = "key-note";
    note.textContent = refused
      ? "The server refused that key. Enter the key it was started with (PREFECT_LIKE_API_KEY)."
      : "This tracking server requires its API key (PREFECT_LIKE_API_KEY). It is kept in this browser's local storage for this site.";
    const title = document.createElement("h2");
    title.id = "key-title";
    title.textContent = "API key needed";
    const use = document.createElement("button");
    use.type = "submit";
    use.textContent = "Use this key";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    const form = document.createElement("form");
    form.className = "key-form card";
    form.append(title, note, input, use, cancel);
    const overlay = document.createElement("div");
    overlay.className = "key-overlay";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-labelledby", "key-title");
    overlay.dataset.testid = "api-key-form";
    overlay.append(form);
    const done = (given) => {
      overlay.remove();
      pendingKey = null;
      resolve(given);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      try {
        localStorage.setItem(KEY_ITEM, given);
      } catch {
        done(false);
        return;
      }
      done(true);
    });
    cancel.addEventListener("click", () => done(false));
    overlay.addEventListener("keydown", (event) => { if (event.key === "Escape") done(false); });
    document.body.append(overlay);
    input.focus();
  });
  return pendingKey;
}

/** Forget the stored API key (e.g. after the server's key changed). */
export function forgetKey() {
  try {
    localStorage.removeItem(KEY_ITEM);
  } catch {
    // storage disabled: nothing was kept
  }
}

async function fetchWithKey(url, signal, method = "GET", body = undefined) {
  const key = storedKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = { signal, headers, method, body: body === undefined ? undefined : JSON.stringify(body) };
  return { key, response: await fetch(url, init) };
}

async function request(method, path, params, body, signal) {
  const url = new URL(`api/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  let { key, response } = await fetchWithKey(url, signal, method, body);
  // A 401: another request may have stored a key meanwhile; else ask for one (again, if the
  // server refused the one we sent), until the user gives up.
  while (response.status === 401) {
    if (storedKey() === key) {
      if (key) forgetKey();
      if (!(await askForKey(Boolean(key)))) break;
    }
    ({ key, response } = await fetchWithKey(url, signal, method, body));
  }
  if (!response.ok) {
    let detail = "";
    try {
      const answer = await response.json();
      detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail ?? answer);
    } catch {
      detail = response.statusText;
    }
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

/** GET api/<path>?<params> (empty params left out); resolves to the parsed JSON. */
export function get(path, params = {}, signal = undefined) {
  return request("GET", path, params, undefined, signal);
}

/** POST api/<path> with a JSON body; resolves to the parsed JSON answer. */
export function post(path, body = {}, signal = undefined) {
  return request("POST", path, {}, body, signal);
}

export const id = (value) => encodeURIComponent(value);
