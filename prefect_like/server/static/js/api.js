// The tracking API, as the dashboard calls it: GET only, JSON out, errors as ApiError.
//
// A server started with PREFECT_LIKE_API_KEY answers 401 to every /api route without it. The
// dashboard then asks for the key once and keeps it in this browser's localStorage, for this
// origin only; it goes out as `Authorization: Bearer <key>` (never in a URL, so it stays out of
// logs and history). The page itself (HTML, JS, CSS) holds no data and is served without a key.

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

/** Ask the user for the server's API key; true if one was given (and stored). */
function askForKey() {
  const given = window.prompt(
    "This tracking server requires its API key (PREFECT_LIKE_API_KEY).\n" +
      "It is kept in this browser's local storage for this site.",
  );
  if (!given || !given.trim()) return false;
  try {
    localStorage.setItem(KEY_ITEM, given.trim());
  } catch {
    return false;
  }
  return true;
}

/** Forget the stored API key (e.g. after the server's key changed). */
export function forgetKey() {
  try {
    localStorage.removeItem(KEY_ITEM);
  } catch {
    // storage disabled: nothing was kept
  }
}

async function fetchWithKey(url, signal) {
  const key = storedKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  return { key, response: await fetch(url, { signal, headers }) };
}

/** GET api/<path>?<params> (empty params left out); resolves to the parsed JSON. */
export async function get(path, params = {}, signal = undefined) {
  const url = new URL(`api/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  let { key, response } = await fetchWithKey(url, signal);
  // A 401: another request may have stored a key meanwhile; else ask for one, once per 401.
  if (response.status === 401 && (storedKey() !== key || askForKey())) {
    ({ response } = await fetchWithKey(url, signal));
  }
  if (!response.ok) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    } catch {
      detail = response.statusText;
    }
    if (response.status === 401) forgetKey();
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

export const id = (value) => encodeURIComponent(value);
