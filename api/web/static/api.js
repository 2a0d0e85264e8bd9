// The HTTP API as the pages use it: the signed-in user's bearer token on
// every request, evidence fetched as blobs (a <video src> cannot send the
// Authorization header), and each call's round trip measured.

const TOKEN_KEY = "citywatch.token";

export class ApiError extends Error {
  constructor(status, detail, message) {
    super(message || detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.assign("/ui/signin");
}

export function requireSignIn() {
  if (!token()) {
    const next = encodeURIComponent(location.pathname + location.search);
    location.replace(`/ui/signin?next=${next}`);
    return false;
  }
  return true;
}

export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password, grant_type: "password" });
  const response = await fetch("/api/auth/token", { method: "POST", body });
  if (!response.ok) throw await errorOf(response);
  const { access_token: accessToken } = await response.json();
  sessionStorage.setItem(TOKEN_KEY, accessToken);
}

async function errorOf(response) {
  let detail = "";
  let message = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : "invalid_request";
    message = body.message || (Array.isArray(body.detail) ? body.detail[0]?.msg : "");
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(response.status, detail, message);
}

function authorized(headers = {}) {
  return { ...headers, Authorization: `Bearer ${token()}` };
}

// Round trips of the workflow actions (ms), newest last; read by the page's
// status line and by tests.
export const roundTrips = [];

// ``priority``: decisions go "high", evidence fetched ahead goes "low", so a
// decision never waits behind downloads for one of the browser's few
// connections to the server.
export async function request(method, path, { body, signal, priority = "auto" } = {}) {
  const headers = authorized(body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
    signal,
    priority,
  });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    requireSignIn();
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

export const getJson = (path, options) => request("GET", path, options);

// A workflow action (review, dispatch, ...) with its round trip timed.
export async function act(ticketId, action, body = {}) {
  const started = performance.now();
  const ticket = await request("POST", `/api/tickets/${ticketId}/${action}`, { body, priority: "high" });
  const elapsedMs = performance.now() - started;
  roundTrips.push(elapsedMs);
  return { ticket, elapsedMs };
}

export function me() {
  return getJson("/api/users/me");
}

// One evidence object as an object URL; the caller revokes it.
export async function evidenceBlobUrl(url, signal, priority = "auto") {
  const response = await fetch(url, { headers: authorized(), signal, priority });
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

export async function evidenceJson(url, signal, priority = "auto") {
  const response = await fetch(url, { headers: authorized(), signal, priority });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}
