// The job's row errors: a paged table read from `/errors`, and the link to `/errors.csv`.

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
  let jobId = null;
  let offset = 0;
  let total = 0;
  let request = 0;

  async function showPage(newOffset) {
    const ticket = ++request;
    const answer = await requestJson("GET", jobPath(jobId, "errors"), {
      limit: PAGE_SIZE,
      offset: newOffset,
    });
    if (ticket !== request) return; // a newer page or job was asked for meanwhile
    if (!answer.ok) {
      replaceChildren(body, messageRow(describeAnswer(answer.status, answer.data)));
      show(section, true);
      return;
    }
    ({ total } = answer.data);
    offset = newOffset;
    show(section, total > 0);
    if (total === 0) return;
    setText(byId("row-errors-title"), `Row errors (${formatCount(total)})`);
    replaceChildren(body, ...answer.data.items.map(errorRow));
    const last = Math.min(offset + answer.data.items.length, total);
    setText(range, `Rows ${formatCount(offset + 1)}–${formatCount(last)} of ${formatCount(total)}`);
    prev.disabled = offset === 0;
    next.disabled = last >= total;
    show(prev.parentElement, total > PAGE_SIZE);
  }

  prev.addEventListener("click", () => showPage(Math.max(offset - PAGE_SIZE, 0)));
  next.addEventListener("click", () => showPage(offset + PAGE_SIZE));
  // A plain link cannot send the API key; with a key, the file is fetched and then saved.
  csv.addEventListener("click", async (event) => {
    if (!apiKey() || !jobId) return;
    event.preventDefault();
    const answer = await downloadFile(jobPath(jobId, "errors.csv"), `import-${jobId}-errors.csv`);
    if (!answer.ok) replaceChildren(body, messageRow(describeAnswer(answer.status, answer.data)));
  });

  return {
    load(id) {
      jobId = id;
      csv.href = apiUrl(jobPath(id, "errors.csv"));
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
