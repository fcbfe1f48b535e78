// Draw one job's state: title, progress bar, counts, timings, warnings and its reason to fail.

import { byId, el, notify, replaceChildren, setText, show } from "./dom.js";
import { formatBytes, formatCount, formatDuration, formatRate, statusLabel } from "./format.js";
import { readingLine } from "./reading.js";
import { RETRYABLE, UNDER_WAY } from "./statuses.js";

const SOURCES = { upload: "Uploaded", cli: "Command line", schedule: "Scheduled reimport" };

const IMPORT_LABELS = { created: "Created", updated: "Updated", unchanged: "Unchanged", failed: "Failed" };
const UNDO_LABELS = { created: "Deleted", updated: "Restored", unchanged: "Unchanged", failed: "Left alone" };

/** A renderer bound to the job card; `render(job)` draws, the clock ticks between updates. */
export function createProgressView() {
  const nodes = {
    title: byId("job-title"),
    badge: byId("job-status"),
    meta: byId("job-meta"),
    bar: byId("job-progress"),
    fill: byId("job-progress-fill"),
    text: byId("job-progress-text"),
    elapsed: byId("job-elapsed"),
    rate: byId("job-rate"),
    eta: byId("job-eta"),
    error: byId("job-error"),
    warnings: byId("job-warnings"),
    warningList: byId("job-warnings-list"),
    reading: byId("job-reading"),
    announcer: byId("job-announcer"),
  };
  let current = null;
  let receivedAt = 0;
  let lastAnnounced = "";
  const clock = setInterval(tick, 1000);

  function render(job) {
    current = job;
    receivedAt = performance.now();
    // An undo job's file name already says so: "undo of prices.xlsx".
    const title = job.source === "undo" ? sentenceCase(job.filename) : `Import of ${job.filename}`;
    setText(nodes.title, title);
    setText(nodes.badge, statusLabel(job.status));
    nodes.badge.dataset.status = job.status;
    setText(nodes.meta, describeJob(job));
    drawBar(job);
    setText(nodes.text, progressSentence(job));
    // An undo deletes what its import created, restores what it updated, and leaves alone
    // (a row error) what changed since: its cards say so.
    const undo = job.source === "undo";
    const labels = undo ? UNDO_LABELS : IMPORT_LABELS;
    for (const [key, label] of Object.entries(labels)) setText(byId(`label-${key}`), label);
    setText(byId("count-created"), formatCount(undo ? job.deleted : job.created));
    setText(byId("count-updated"), formatCount(job.updated));
    setText(byId("count-unchanged"), formatCount(job.unchanged));
    setText(byId("count-failed"), formatCount(job.failed));
    // Rows a create_only or update_only import left alone.
    setText(byId("count-skipped"), formatCount(job.skipped ?? 0));
    byId("card-skipped").hidden = undo || ((job.mode ?? "upsert") === "upsert" && !job.skipped);
    setText(nodes.rate, formatRate(job.rows_per_s));
    tick();
    const ended = RETRYABLE.has(job.status);
    nodes.error.classList.toggle("notice-error", job.status === "failed");
    notify(nodes.error, ended && job.error ? `${job.status === "failed" ? "Why it failed" : "Why it stopped"}: ${job.error}` : "");
    drawWarnings(job.warnings ?? []);
    // A review shows the reading with its selects.
    notify(nodes.reading, job.status === "awaiting_review" ? "" : readingLine(job.reading));
    announce(job);
  }

  function drawBar(job) {
    const known = job.total_rows !== null && job.total_rows !== undefined;
    const running = UNDER_WAY.has(job.status);
    nodes.bar.classList.toggle("is-indeterminate", running && !known);
    nodes.bar.dataset.status = job.status;
    if (!known && running) {
      // Unknown until the sheet is read: an indeterminate bar has no value.
      nodes.bar.removeAttribute("aria-valuenow");
      nodes.bar.setAttribute("aria-valuetext", progressSentence(job));
      nodes.fill.style.width = "";
      return;
    }
    const percent = Number(job.percent ?? 0);
    nodes.bar.setAttribute("aria-valuenow", String(percent));
    nodes.bar.setAttribute(
      "aria-valuetext",
      known ? `${formatCount(job.processed_rows)} of ${formatCount(job.total_rows)} items, ${percent} %`
        : `${percent} %`,
    );
    nodes.fill.style.width = `${Math.min(Math.max(percent, 0), 100)}%`;
  }

  function drawWarnings(warnings) {
    replaceChildren(nodes.warningList, ...warnings.map((text) => el("li", {}, text)));
    show(nodes.warnings, warnings.length > 0);
  }

  // Between server updates, elapsed time and ETA move with the clock.
  function tick() {
    if (!current) return;
    const drift = current.status === "processing" ? (performance.now() - receivedAt) / 1000 : 0;
    const elapsed = current.elapsed_s === null ? null : current.elapsed_s + drift;
    setText(nodes.elapsed, formatDuration(elapsed));
    const eta = current.eta_s === null || current.eta_s === undefined
      ? null : Math.max(current.eta_s - drift, 0);
    setText(nodes.eta, current.status === "processing" ? formatDuration(eta) : "–");
  }

  function announce(job) {
    const message = announcement(job);
    if (message && message !== lastAnnounced) {
      lastAnnounced = message;
      setText(nodes.announcer, message);
    }
  }

  function reset() {
    current = null;
    lastAnnounced = "";
    setText(nodes.announcer, "");
  }

  /** Announce a note of the page's own; the next news of the job is announced after it. */
  function say(message) {
    lastAnnounced = message;
    setText(nodes.announcer, message);
  }

  return { render, reset, say, destroy: () => clearInterval(clock) };
}

function sentenceCase(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

/** "Processing 2,500 / 9,713 items" and its siblings for each status. */
export function progressSentence(job) {
  const done = formatCount(job.processed_rows);
  const total = job.total_rows === null ? null : formatCount(job.total_rows);
  const of = `${done} / ${total} items`;
  switch (job.status) {
    case "pending":
      // Why it has not started yet (the orchestrator is starting or away), when known.
      return job.waiting_for ? `Waiting to start: ${job.waiting_for}…` : "Waiting for the import to start…";
    case "processing":
      if (job.cancel_requested) return `Stopping after the current batch at ${of}…`;
      if (job.previewing && total !== null) {
        // A guarded import is counted against the stored items before it writes; the bar
        // stays at 0 until it writes, the sentence says how far the count is.
        if (job.review) return `Previewing ${of}`;
        return `Checking ${formatCount(job.checked_rows ?? 0)} / ${total} items against the guardrails`;
      }
      if (job.previewing) return "Reading the sheet…";
      return total === null ? "Reading the sheet…" : `Processing ${of}`;
    case "awaiting_review":
      return job.total_rows === null
        ? "Waiting for you: map the columns below"
        : `Previewed ${total} items; waiting for you to confirm`;
    case "completed":
      return job.dry_run ? `Checked ${of}; nothing was written (dry run)` : `Processed ${of}`;
    case "cancelled":
      return total === null ? "Cancelled before any item was processed" : `Cancelled at ${of}`;
    case "failed":
      return total === null || job.processed_rows === 0
        ? "Failed before any item was written" : `Stopped at ${of}`;
    case "undone":
      return `Processed ${of}; undone since`;
    default:
      return "";
  }
}

function describeJob(job) {
  // A run that answering the review started is not another attempt (`retries`).
  if (job.source === "undo") return job.retries ? `Undo · attempt ${job.retries + 1}` : "Undo";
  const parts = [
    SOURCES[job.source] ?? job.source,
    formatBytes(job.file_size),
    job.sheet ? `sheet ${job.sheet}` : "first visible sheet",
    job.on_error === "abort" ? "abort on invalid rows" : "skip invalid rows",
  ];
  if (job.mode === "create_only") parts.push("create only");
  if (job.mode === "update_only") parts.push("update only");
  if (job.dry_run) parts.push("dry run");
  if (job.retries) parts.push(`attempt ${job.retries + 1}`);
  return parts.join(" · ");
}

function announcement(job) {
  if (job.source === "undo") return undoAnnouncement(job);
  const counts = `${formatCount(job.created)} created, ${formatCount(job.updated)} updated, `
    + `${formatCount(job.unchanged)} unchanged, `
    + (job.skipped ? `${formatCount(job.skipped)} skipped, ` : "")
    + `${formatCount(job.failed)} failed`;
  switch (job.status) {
    case "pending":
      return `Import of ${job.filename} is waiting to start.`;
    case "processing": {
      if (job.total_rows === null) return `Reading ${job.filename}.`;
      const quarter = Math.floor(Number(job.percent) / 25) * 25;
      return quarter > 0 ? `Import ${quarter} % done.` : `Importing ${formatCount(job.total_rows)} items.`;
    }
    case "awaiting_review":
      return `Import of ${job.filename} awaits your review: ${counts} if confirmed.`;
    case "completed":
      return `Import completed: ${counts}.`;
    case "cancelled":
      return `Import cancelled: ${counts}.`;
    case "failed":
      return `Import failed${job.error ? `: ${job.error}` : ""}.`;
    case "undone":
      return `Import undone: it had ${counts}.`;
    default:
      return "";
  }
}

function undoAnnouncement(job) {
  const counts = `${formatCount(job.deleted)} deleted, ${formatCount(job.updated)} restored, `
    + `${formatCount(job.failed)} left alone`;
  switch (job.status) {
    case "pending":
      return "Undo is waiting to start.";
    case "processing":
      return "Undoing the import.";
    case "completed":
      return `Undo completed: ${counts}.`;
    case "cancelled":
      return `Undo cancelled: ${counts}.`;
    case "failed":
      return `Undo failed${job.error ? `: ${job.error}` : ""}.`;
    default:
      return "";
  }
}
