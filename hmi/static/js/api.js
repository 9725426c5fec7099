// Fetch wrapper for the SCADA API: JSON in/out, same-origin cookie, 401 → 'hmi:unauthorized'.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }
}

/** Build a URL with query parameters (null/undefined/'' values are left out). */
export function apiUrl(path, params) {
  const url = new URL(path, location.origin);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v === null || v === undefined || v === '') continue;
      url.searchParams.set(k, String(v));
    }
  }
  return url.pathname + url.search;
}

/**
 * Call the API. `path` like '/api/v1/alarms'; `body` is sent as JSON;
 * `params` become the query string. Resolves to the parsed JSON (or null
 * for an empty answer); rejects with ApiError (status 0 = network error).
 */
export async function api(path, { method = 'GET', body, params, signal } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(apiUrl(path, params), init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(String((err && err.message) || err), 0, null);
  }
  const text = await res.text().catch(() => '');
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401) {
      window.dispatchEvent(new CustomEvent('hmi:unauthorized', { detail: { path } }));
    }
    const msg = (data && typeof data.error === 'string' && data.error) || res.statusText || `HTTP ${res.status}`;
    throw new ApiError(msg, res.status, data);
  }
  return data;
}
