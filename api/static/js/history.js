// The job history: newest first, filtered by status, page by page with `next_cursor`.

import { describeAnswer, requestJson } from "./api.js";
import { byId, el, notify, replaceChildren, show } from "./dom.js";
import { formatCount, formatDuration, formatTime, statusLabel } from "./format.js";

const PAGE_SIZE = 20;
const SOURCES = { upload: "Upload", cli: "CLI", schedule: "Schedule", undo: "Undo" };

/** The history card; `onOpen(jobId)` opens a job, `refresh()` reloads the first page. */
export function createHistory({ onOpen }) {
  const table = byId("history-table");
  const body = byId("history-body");
  const filter = byId("history-status");
  const more = byId("history-more");
  const empty = byId("history-empty");
  const message = byId("history-message");
  let cursor = null;
  let openId = null;
  let request = 0;

  async function load({ append }) {
    const ticket = ++request;
    const answer = await requestJson("GET", "imports", {
      status: filter.value,
      limit: PAGE_SIZE,
      cursor: append ? cursor : null,
    });
    if (ticket !== request) return;
    if (!answer.ok) {
      notify(message, describeAnswer(answer.status, answer.data));
      return;
    }
    notify(message, "");
    cursor = answer.data.next_cursor;
    const rows = answer.data.items.map(jobRow);
    if (append) body.append(...rows);
    else replaceChildren(body, ...rows);
    show(empty, body.childElementCount === 0);
    show(table, body.childElementCount > 0);
    empty.textContent = filter.value
      ? `No ${filter.value} imports.` : "No imports yet.";
    show(more, Boolean(cursor));
    mark(openId);
  }

  function jobRow(job) {
    const link = el("a", {
      href: `?job=${encodeURIComponent(job.job_id)}`,
      className: "file-link",
      onclick: (event) => {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        onOpen(job.job_id);
      },
    }, job.filename);
    const flags = [job.dry_run ? "dry run" : "", job.status === "processing" && job.total_rows
      ? `${Math.round(job.percent)} %` : ""].filter(Boolean).join(" · ");
    return el(
      "tr",
      { "data-job-id": job.job_id },
      el("th", { scope: "row", "data-label": "File" }, el("span", {}, link,
        flags ? el("span", { className: "muted row-flags" }, ` · ${flags}`) : null)),
      el("td", { "data-label": "Status" },
        el("span", { className: "badge", "data-status": job.status }, statusLabel(job.status))),
      el("td", { "data-label": "Source" }, SOURCES[job.source] ?? job.source),
      // An undo's row shows the items it deleted as a negative number of created ones.
      job.source === "undo" ? countCell("Deleted", job.deleted ? -job.deleted : 0) : countCell("Created", job.created),
      countCell("Updated", job.updated),
      countCell("Unchanged", job.unchanged),
      countCell("Failed", job.failed),
      el("td", { className: "num", "data-label": "Duration" }, formatDuration(job.elapsed_s)),
      el("td", { "data-label": "Started" }, formatTime(job.started_at ?? job.created_at)),
    );
  }

  function mark(jobId) {
    openId = jobId;
    for (const row of body.rows) {
      if (row.dataset.jobId === jobId) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
  }

  filter.addEventListener("change", () => load({ append: false }));
  byId("history-refresh").addEventListener("click", () => load({ append: false }));
  more.addEventListener("click", () => load({ append: true }));

  return { refresh: () => load({ append: false }), mark };
}

function countCell(label, value) {
  return el("td", { className: "num", "data-label": label }, formatCount(value));
}
