// The one way the UI talks to the API: JSON in, JSON out, and the API's {"error", "hint"} surfaced.
import { h } from "./dom.js";

export class ApiError extends Error {
  constructor(status, message, hint) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`, "is `cvcycle up` still running?");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data && data.hint);
  }
  return data;
}

function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export const api = {
  get: (path, params) => request("GET", withQuery(path, params)),
  post: (path, body) => request("POST", path, body ?? {}),
  put: (path, body) => request("PUT", path, body ?? {}),
  delete: (path) => request("DELETE", path),
};

/** A visible error box for a failed call (message and hint as text). */
export function errorBox(err) {
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, err.status ? `Error ${err.status}: ` : "Error: "),
    err.message,
    err.hint ? h("div", { class: "hint" }, `hint: ${err.hint}`) : null,
  );
}
