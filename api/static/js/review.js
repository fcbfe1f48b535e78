// The review of an import started with "Review before importing", or held back by a
// guardrail: why it waits (the guardrails' sentences), how the file was read and its
// columns (one select each), the counts, how far prices and quantities would move (two
// small charts), the changes a confirmed import would make, and Confirm / Cancel.

import { describeAnswer, jobPath, requestJson, sentence } from "./api.js";
import { drawDistribution } from "./chart.js";
import { byId, el, notify, replaceChildren, setText, show } from "./dom.js";
import { formatCount } from "./format.js";
import { changedChoices, choiceValue, describeReading, fillSelect } from "./reading.js";

const IGNORE = "";
// A text file whose reading was not recorded (its columns were not found) is known by name.
const TEXT_NAME = /\.(csv|tsv|txt)$/i;

/** The review panel; `onAnswered(action)` hears a confirm, a new preview or a reject. */
export function createReview({ onAnswered }) {
  const panel = byId("review");
  const columnsBody = byId("review-columns-body");
  const applyButton = byId("review-apply");
  const confirmButton = byId("review-confirm");
  const rejectButton = byId("review-reject");
  const message = byId("review-message");
  const readingSelects = {
    encoding: byId("review-encoding"),
    delimiter: byId("review-delimiter"),
    decimal: byId("review-decimal"),
  };
  let jobId = null;
  let job = null;
  let shownRound = null;
  let columns = [];
  let loading = false;
  let hasProblem = false;

  /** The mapping the selects show now: header key -> field or null. */
  function chosenMapping() {
    const mapping = {};
    for (const select of columnsBody.querySelectorAll("select")) {
      mapping[select.dataset.key] = select.value === IGNORE ? null : select.value;
    }
    return mapping;
  }

  function mappingChanged() {
    const mapping = chosenMapping();
    return columns.some((c) => (mapping[c.key] ?? null) !== (c.field ?? null));
  }

  function changed() {
    return mappingChanged() || Object.keys(changedChoices(readingSelects)).length > 0;
  }

  function noteChange() {
    const dirty = changed();
    show(applyButton, dirty);
    setText(confirmButton, dirty ? "Preview and import" : "Confirm import");
  }

  /** The selects of how the file was read, each showing the value used and how it was
   * decided; going back to detection is offered where a person had chosen. */
  function drawReading(preview) {
    const reading = preview.reading ?? {};
    // Recorded only once the columns were found; before that, the file name tells.
    const text = preview.reading ? Boolean(reading.encoding || reading.delimiter)
      : TEXT_NAME.test(job?.filename ?? "");
    for (const [name, select] of Object.entries(readingSelects)) {
      const given = job?.[name] ?? null;
      fillSelect(select, name, {
        used: reading[name] ?? null,
        detect: given !== null,
        initial: choiceValue(name, given),
      });
    }
    show(byId("review-encoding-field"), text);
    show(byId("review-delimiter-field"), text);
    // In words too: a narrow screen cuts a select's text short.
    const words = describeReading(preview.reading);
    notify(byId("review-reading-text"), words ? `${words}.` : "");
  }

  function drawColumns(preview) {
    columns = preview.columns;
    const rows = preview.columns.map((column) => {
      const select = el(
        "select",
        { "data-key": column.key, "aria-label": `Field for the column ${column.header}` },
        el("option", { value: IGNORE }, "Ignore"),
        ...preview.fields.map((f) =>
          el("option", { value: f.name }, f.required ? `${f.name} (required)` : f.name)),
      );
      select.value = column.field ?? IGNORE;
      select.addEventListener("change", noteChange);
      return el("tr", {},
        el("th", { scope: "row" }, column.header),
        el("td", {}, select),
        el("td", { className: "samples" }, column.samples.join(", ")));
    });
    replaceChildren(columnsBody, ...rows);
    show(applyButton, false);
    setText(confirmButton, "Confirm import");
  }

  function drawChanges(preview) {
    const rows = preview.changes.map((change) => el("tr", {},
      el("td", {}, change.row ?? ""),
      el("td", {}, change.sku),
      el("td", {}, change.action === "create" ? "New item" : "Update"),
      el("td", { className: "diff" }, ...Object.entries(change.fields).map(([field, [before, after]]) =>
        el("div", {},
          el("span", { className: "diff-field" }, `${field}: `),
          change.action === "create" ? "" : el("del", {}, shown(before)),
          change.action === "create" ? "" : " → ",
          el("ins", {}, shown(after))))),
    ));
    replaceChildren(byId("review-changes-body"), ...rows);
    show(byId("review-changes"), rows.length > 0);
    show(byId("review-changes-empty"), preview.counts !== null && rows.length === 0);
  }

  /** The guardrails that tripped, each in one sentence, at the top of the review. */
  function drawGuard(preview) {
    const trips = preview.guard ?? [];
    replaceChildren(byId("review-guard-list"),
      ...trips.map((trip) => el("li", { "data-rule": trip.rule }, sentence(trip.sentence))));
    show(byId("review-guard"), trips.length > 0);
    setText(byId("review-changes-title"), trips.length ? "Largest changes first" : "Changes");
  }

  function drawCharts(preview) {
    const chart = preview.chart;
    const figures = chart ? [
      drawDistribution("chart-prices", "prices", chart.prices),
      drawDistribution("chart-quantities", "quantities", chart.quantities),
    ] : [];
    replaceChildren(byId("review-charts-body"), ...figures);
    show(byId("review-charts"), figures.length > 0);
  }

  function drawErrors(preview) {
    const rows = preview.errors.map((e) => el("tr", {},
      el("td", {}, e.row), el("td", {}, e.column ?? ""), el("td", {}, e.value ?? ""),
      el("td", {}, e.message)));
    replaceChildren(byId("review-errors-body"), ...rows);
    show(byId("review-errors"), rows.length > 0);
  }

  function draw(preview) {
    shownRound = preview.round;
    const counts = preview.counts;
    setText(byId("review-summary"), counts
      ? `${formatCount(counts.total_rows)} rows: ${formatCount(counts.created)} to create, `
        + `${formatCount(counts.updated)} to update, ${formatCount(counts.unchanged)} unchanged, `
        + (counts.skipped ? `${formatCount(counts.skipped)} skipped by the mode, ` : "")
        + `${formatCount(counts.failed)} failing. Nothing is written until you confirm.`
      : "Map the columns, then preview again.");
    hasProblem = Boolean(preview.problem);
    notify(byId("review-problem"), preview.problem ? sentence(preview.problem) : "");
    show(byId("review-changes-title"), counts !== null);
    drawGuard(preview);
    drawCharts(preview);
    drawReading(preview);
    drawColumns(preview);
    drawChanges(preview);
    drawErrors(preview);
    setText(byId("review-expiry"), preview.expires_at
      ? `Unconfirmed, the import is cancelled at ${new Date(preview.expires_at).toLocaleString()}.`
      : "");
    confirmButton.disabled = false;
    rejectButton.disabled = false;
    show(panel, true);
  }

  async function load() {
    if (loading) return;
    loading = true;
    const answer = await requestJson("GET", jobPath(jobId, "preview"));
    loading = false;
    if (!answer.ok) {
      notify(message, describeAnswer(answer.status, answer.data));
      show(panel, true);
      return;
    }
    draw(answer.data);
  }

  /** Why the chosen columns cannot be sent, or "" when they can. */
  function mappingProblem() {
    const chosen = Object.values(chosenMapping()).filter((f) => f !== null);
    if (!chosen.includes("sku")) return "Choose the column that holds the SKU.";
    const twice = chosen.find((f, i) => chosen.indexOf(f) !== i);
    return twice ? `The field ${twice} is chosen for two columns; keep one of them.` : "";
  }

  async function send(action) {
    const reading = changedChoices(readingSelects);
    // Another encoding or delimiter gives other columns: the server finds them anew.
    const newColumns = "encoding" in reading || "delimiter" in reading;
    if (action !== "reject" && !newColumns
        && (mappingChanged() || action === "remap" || hasProblem)) {
      const problem = mappingProblem();
      if (problem) {
        notify(message, problem);
        return;
      }
    }
    const mapping = mappingChanged() ? chosenMapping() : null;
    const path = action === "remap" ? "preview" : action;
    // Only what the person changed is sent; the server keeps the rest as it was.
    const body = action === "reject" ? undefined : { mapping, ...reading };
    confirmButton.disabled = true;
    rejectButton.disabled = true;
    applyButton.disabled = true;
    notify(message, "");
    const answer = await requestJson("POST", jobPath(jobId, path), {}, body);
    applyButton.disabled = false;
    if (!answer.ok) {
      confirmButton.disabled = false;
      rejectButton.disabled = false;
      notify(message, describeAnswer(answer.status, answer.data));
      return;
    }
    show(panel, false);
    shownRound = null;
    onAnswered(action);
  }

  for (const select of Object.values(readingSelects)) select.addEventListener("change", noteChange);
  applyButton.addEventListener("click", () => send("remap"));
  confirmButton.addEventListener("click", () => send("confirm"));
  rejectButton.addEventListener("click", () => send("reject"));

  return {
    /** Show the job's preview when it awaits its review; hide the panel otherwise. */
    update(latest) {
      job = latest;
      if (job.job_id !== jobId) {
        jobId = job.job_id;
        shownRound = null;
      }
      if (job.status !== "awaiting_review") {
        show(panel, false);
        return;
      }
      if (shownRound !== job.review_round) load();
    },
    hide() {
      show(panel, false);
      notify(message, "");
      jobId = null;
      job = null;
      shownRound = null;
    },
  };
}

function shown(value) {
  return value === null || value === undefined || value === "" ? "(empty)" : String(value);
}
