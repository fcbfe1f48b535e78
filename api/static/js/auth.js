// The API key a service with `IMPORTER_API_KEYS` asks for: kept in sessionStorage, so it
// lives as long as the tab and never reaches a URL, a log or another site.

const STORAGE_NAME = "importer.apiKey";
const listeners = new Set();

/** The key this tab was given, or null. */
export function apiKey() {
  try {
    return sessionStorage.getItem(STORAGE_NAME) || null;
  } catch {
    return null; // storage disabled: the page still works where the API is open
  }
}

/** Remember `key` for this tab (an empty key forgets it). */
export function saveApiKey(key) {
  try {
    if (key) sessionStorage.setItem(STORAGE_NAME, key);
    else sessionStorage.removeItem(STORAGE_NAME);
  } catch {
    // Without storage the key is lost on reload; the form asks again then.
  }
}

/** `headers` plus `Authorization: Bearer KEY` when the tab has a key. */
export function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** Call `listener({hadKey})` whenever the API answers 401. Returns a function that stops it. */
export function onKeyNeeded(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Tell the listeners an answer was 401; every API call of the page reports its status here. */
export function noteStatus(status) {
  if (status !== 401) return;
  const hadKey = apiKey() !== null;
  for (const listener of listeners) listener({ hadKey });
}
