// The page's entry point: the job named in the URL (`?job=<id>` or `#job=<id>`) is followed.

import { byId, notify } from "./dom.js";
import { setUpFileLinks } from "./files.js";
import { createHistory } from "./history.js";
import { createJobView } from "./job.js";
import { setUpKeyForm } from "./key.js";
import { setUpUpload } from "./upload.js";

const JOB_ID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const history = createHistory({ onOpen: (id) => openJob(id) });
const HISTORY_REFRESH_MS = 3000;
let historyRefreshedAt = 0;
const jobView = createJobView({
  onOpen: (id) => openJob(id, { focus: true }),
  // The history shows the followed job too: refresh it on news, at most every 3 s.
  onChange: (_job, { statusChanged }) => {
    if (statusChanged || performance.now() - historyRefreshedAt > HISTORY_REFRESH_MS) {
      historyRefreshedAt = performance.now();
      history.refresh();
    }
  },
});

// A key entered after a 401 repeats what the page had asked for.
setUpKeyForm({
  onSaved: () => {
    notify(byId("upload-message"), "");
    history.refresh();
    jobView.refollow();
  },
});

setUpFileLinks();
setUpUpload({
  onStarted: (id) => openJob(id, { focus: true }),
  onOpenJob: (id) => openJob(id, { focus: true }),
});

/** The job id the address names, if any. */
function jobIdInUrl() {
  const fromQuery = new URLSearchParams(window.location.search).get("job");
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("job");
  return fromQuery || fromHash || null;
}

/** Show a job and put it in the address, so a reload or a shared link shows it again. */
function openJob(id, { focus = false } = {}) {
  const url = new URL(window.location.href);
  url.search = `?job=${encodeURIComponent(id)}`;
  url.hash = "";
  if (url.href !== window.location.href) window.history.pushState({ job: id }, "", url);
  route({ focus });
}

function route({ focus = false } = {}) {
  const id = jobIdInUrl()?.trim();
  history.mark(id ?? null);
  if (!id) {
    jobView.close();
    document.title = "Item importer";
    return;
  }
  if (!JOB_ID.test(id)) {
    // The server would refuse it too; saying so here spares a request that cannot succeed.
    jobView.close();
    notify(byId("upload-message"), "The address names no valid import job; check the link.");
    return;
  }
  jobView.open(id);
  document.title = "Import · Item importer";
  if (focus) {
    byId("job").scrollIntoView({ block: "start", behavior: "smooth" });
    byId("job-title").focus({ preventScroll: true });
  }
}

byId("new-import-link").addEventListener("click", (event) => {
  event.preventDefault();
  window.history.pushState({}, "", new URL("./", window.location.href));
  route();
  notify(byId("upload-message"), "");
  byId("file-input").focus();
});

window.addEventListener("popstate", () => route());
window.addEventListener("hashchange", () => route());
route();
history.refresh();
