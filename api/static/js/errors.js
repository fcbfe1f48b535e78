// The job's row errors: a paged table read from `/errors`, the link to `/errors.csv`, and
// the rejected rows themselves as a workbook to fix and upload again (`/rejected.xlsx`).

import { apiUrl, describeAnswer, downloadFile, jobPath, requestJson } from "./api.js";
import { apiKey } from "./auth.js";
import { byId, el, replaceChildren, setText, show } from "./dom.js";
import { formatCount } from "./format.js";

export const PAGE_SIZE = 25;

/** The row-error section of the job card; `load(jobId)` reads its first page. */
export function createErrorTable() {
  const section = byId("row-errors");
  const body = byId("row-errors-body");
  const range = byId("errors-range");
  const prev = byId("errors-prev");
  const next = byId("errors-next");
  const csv = byId("errors-csv-link");
  const rejected = byId("rejected-link");
  let jobId = null;
  // Pages are read by key: the row each page starts after, for every page seen so far.
  let starts = [null];
  let index = 0;
  let total = 0;
  let request = 0;

  async function showPage(newIndex) {
    const ticket = ++request;
    const query = { limit: PAGE_SIZE };
    if (starts[newIndex] !== null) query.after_row = starts[newIndex];
    const answer = await requestJson("GET", jobPath(jobId, "errors"), query);
    if (ticket !== request) return; // a newer page or job was asked for meanwhile
    if (!answer.ok) {
      replaceChildren(body, messageRow(describeAnswer(answer.status, answer.data)));
      show(section, true);
      return;
    }
    ({ total } = answer.data);
    index = newIndex;
    starts = starts.slice(0, index + 1);
    if (answer.data.next_after_row !== null) starts.push(answer.data.next_after_row);
    show(section, total > 0);
    if (total === 0) return;
    setText(byId("row-errors-title"), `Row errors (${formatCount(total)})`);
    replaceChildren(body, ...answer.data.items.map(errorRow));
    const first = index * PAGE_SIZE + 1;
    const last = Math.min(index * PAGE_SIZE + answer.data.items.length, total);
    setText(range, `Rows ${formatCount(first)}–${formatCount(last)} of ${formatCount(total)}`);
    prev.disabled = index === 0;
    next.disabled = last >= total || starts.length <= index + 1;
    show(prev.parentElement, total > PAGE_SIZE);
  }

  prev.addEventListener("click", () => showPage(Math.max(index - 1, 0)));
  next.addEventListener("click", () => showPage(index + 1));
  // A plain link cannot send the API key; with a key, the file is fetched and then saved.
  csv.addEventListener("click", async (event) => {
    if (!apiKey() || !jobId) return;
    event.preventDefault();
    const answer = await downloadFile(jobPath(jobId, "errors.csv"), `import-${jobId}-errors.csv`);
    if (!answer.ok) replaceChildren(body, messageRow(describeAnswer(answer.status, answer.data)));
  });

  // Always fetched: a file that is gone (410) or an import without failed rows (409) is
  // told as a sentence here, not saved as a file.
  rejected.addEventListener("click", async (event) => {
    event.preventDefault();
    if (!jobId) return;
    const answer = await downloadFile(jobPath(jobId, "rejected.xlsx"), `import-${jobId}-rejected.xlsx`);
    if (!answer.ok) replaceChildren(body, messageRow(describeAnswer(answer.status, answer.data)));
  });

  return {
    load(id) {
      jobId = id;
      starts = [null];
      csv.href = apiUrl(jobPath(id, "errors.csv"));
      rejected.href = apiUrl(jobPath(id, "rejected.xlsx"));
      return showPage(0);
    },
    hide() {
      request += 1;
      jobId = null;
      show(section, false);
      replaceChildren(body);
    },
  };
}

function errorRow(item) {
  return el(
    "tr",
    {},
    el("td", { className: "num", "data-label": "Row" }, formatCount(item.row)),
    el("td", { "data-label": "Column" }, item.column ?? "–"),
    el("td", { className: "cell-value", "data-label": "Value" },
      item.value === null || item.value === "" ? el("span", { className: "muted" }, "(empty)") : item.value),
    el("td", { "data-label": "Message" }, item.message),
  );
}

function messageRow(text) {
  return el("tr", {}, el("td", { colspan: 4 }, text));
}
