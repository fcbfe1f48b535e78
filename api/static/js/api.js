// The HTTP API as the page uses it: paths relative to the page, answers as {ok, status, data}.

import { noteStatus, withKey } from "./auth.js";

const BASE = "api/excel";

/** A URL of the service, relative to the page so it holds behind a path prefix. */
export function apiUrl(path, params = {}) {
  const url = new URL(`${BASE}/${path}`, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url.toString();
}

export const jobPath = (jobId, what) => `import/${encodeURIComponent(jobId)}/${what}`;

/** The one sentence a refused request carries (`detail`), or one of ours when there is none. */
export function describeAnswer(status, data) {
  if (status === 401) return "The service needs an API key: enter it above, then try again.";
  if (data && typeof data.detail === "string" && data.detail) return sentence(data.detail);
  if (status === 0) return "The server could not be reached; check the connection and try again.";
  if (status >= 500) return `The server failed to answer (HTTP ${status}); try again in a moment.`;
  return `The server refused the request (HTTP ${status}).`;
}

/** A server detail as a sentence: capital first letter, full stop at the end. */
export function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/**
 * GET or POST JSON (`body`, when given, is sent as JSON); never throws for HTTP answers, only
 * gives status 0 for network failures.
 */
export async function requestJson(method, path, params = {}, body = undefined) {
  let response;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    response = await fetch(apiUrl(path, params), {
      method,
      headers: withKey(headers),
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { ok: false, status: 0, data: null };
  }
  noteStatus(response.status);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

/**
 * POST a multipart upload with XMLHttpRequest, which (unlike fetch) reports upload progress.
 * Resolves to {ok, status, data}; status 0 when the connection failed before an answer.
 */
export function uploadImport(formData, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl("import"));
    for (const [name, value] of Object.entries(withKey({ Accept: "application/json" }))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      noteStatus(xhr.status);
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: xhr.response });
    });
    const failed = () => resolve({ ok: false, status: 0, data: null });
    xhr.addEventListener("error", failed);
    xhr.addEventListener("abort", failed);
    xhr.addEventListener("timeout", failed);
    xhr.send(formData);
  });
}

/**
 * GET a streamed answer with the key (EventSource cannot send headers); resolves to the
 * Response, or null when the connection failed. `signal` aborts it.
 */
export async function openStream(path, signal) {
  try {
    const response = await fetch(apiUrl(path), {
      headers: withKey({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal,
    });
    noteStatus(response.status);
    return response;
  } catch {
    return null;
  }
}

/** GET a file with the key and hand it to the browser as a download named `filename`. */
export function downloadFile(path, filename) {
  return downloadUrl(apiUrl(path), filename);
}

/** `downloadFile` of a whole URL (a link's own, outside the import routes). */
export async function downloadUrl(address, filename) {
  let response;
  try {
    response = await fetch(address, { headers: withKey(), cache: "no-store" });
  } catch {
    return { ok: false, status: 0, data: null };
  }
  noteStatus(response.status);
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    return { ok: false, status: response.status, data };
  }
  // The name the server gives the file, if it gives one (the rejected rows keep the upload's).
  const given = /filename\*=UTF-8''([^;]+)/i.exec(response.headers.get("Content-Disposition") ?? "");
  const name = given ? decodeURIComponent(given[1]) : filename;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the file once the click is handled; free the memory after that.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { ok: true, status: response.status, data: null };
}
