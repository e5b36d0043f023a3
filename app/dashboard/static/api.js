// The HTTP API client: adds `Authorization: Bearer <token>` and turns error bodies
// (`{"status_code", "detail", "extra"}`, docs/design.md "HTTP API") into an ApiError whose message is `detail`.

export class ApiError extends Error {
  constructor(status, detail, extra = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.extra = extra;
  }
}

export class Api {
  #getToken;
  #onUnauthorized;

  /**
   * getToken(): the current token; onUnauthorized(message): called on any 401 (the token was revoked),
   * before the ApiError is thrown to the caller.
   */
  constructor({ getToken, onUnauthorized }) {
    this.#getToken = getToken;
    this.#onUnauthorized = onUnauthorized;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, json) {
    return this.request("POST", path, { json });
  }

  patch(path, json) {
    return this.request("PATCH", path, { json });
  }

  delete(path) {
    return this.request("DELETE", path);
  }

  /** JSON in (`json`) or any body (`body`: a string or FormData), JSON or null (204) out. */
  async request(method, path, { json, body, contentType } = {}) {
    const response = await this.#fetch(method, path, { json, body, contentType });
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") ?? "";
    return type.includes("json") ? response.json() : response.text();
  }

  /** The response body as a Blob plus the server's file name (for downloads such as the CSV export). */
  async download(path) {
    const response = await this.#fetch("GET", path, {});
    const disposition = response.headers.get("content-disposition") ?? "";
    const match = /filename="?([^";]+)"?/i.exec(disposition);
    return { blob: await response.blob(), filename: match ? match[1] : "download" };
  }

  async #fetch(method, path, { json, body, contentType }) {
    const headers = { Accept: "application/json" };
    const token = this.#getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (contentType) {
      headers["Content-Type"] = contentType; // FormData sets its own multipart boundary
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch {
      throw new ApiError(0, "Cannot reach the server. Check your connection and try again.");
    }
    if (response.ok) return response;
    const error = await errorFrom(response);
    if (response.status === 401) this.#onUnauthorized?.(error.message);
    throw error;
  }
}

async function errorFrom(response) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status line is the best we have.
  }
  let detail = payload?.detail || `${response.status} ${response.statusText}`.trim();
  // Litestar's validation errors list what was wrong in `extra`: [{message, key}].
  if (Array.isArray(payload?.extra)) {
    const reasons = payload.extra.map((item) => item?.message).filter(Boolean);
    if (reasons.length) detail = `${detail}: ${reasons.join("; ")}`;
  }
  return new ApiError(response.status, detail, payload?.extra ?? null);
}
