// The job card: follows one job live, offers cancel and retry, shows its row errors when done.

import { describeAnswer, jobPath, requestJson } from "./api.js";
import { byId, notify, setText, show } from "./dom.js";
import { createErrorTable } from "./errors.js";
import { followJob } from "./follow.js";
import { RETRYABLE, TERMINAL, UNDER_WAY } from "./statuses.js";
import { createProgressView } from "./progress.js";
import { createReview } from "./review.js";
import { createUndoControls } from "./undo.js";

const CONNECTION_NOTES = {
  live: "",
  polling: "Live updates stopped; checking the progress every 2 seconds instead.",
  lost: "The server is not answering; trying again every 2 seconds.",
  key: "Enter the API key above to follow this import.",
};

/** The job card; `onChange(job, {statusChanged})` hears every update of the followed job,
 * `onOpen(id)` opens another job (an undo just started). */
export function createJobView({ onChange, onOpen }) {
  const card = byId("job");
  const cancelButton = byId("cancel-button");
  const retryButton = byId("retry-button");
  const prefectLink = byId("prefect-link");
  const actionMessage = byId("job-action-message");
  const connection = byId("job-connection");
  const progress = createProgressView();
  const errors = createErrorTable();
  const review = createReview({
    onAnswered: (action) => {
      progress.say(action === "reject" ? "Import cancelled; nothing was written."
        : action === "remap" ? "Previewing again with the new settings…"
          : "Confirmed; the import is being written.");
    },
  });
  const undo = createUndoControls({ onStarted: (id) => onOpen(id) });
  let jobId = null;
  let stopFollowing = null;
  let lastStatus = null;

  function follow() {
    stopFollowing?.();
    lastStatus = null;
    stopFollowing = followJob(jobId, {
      onJob: render,
      onConnection: (mode) => notify(connection, CONNECTION_NOTES[mode]),
      onMissing: (sentence) => {
        card.classList.add("is-missing");
        setText(byId("job-title"), "Import not found");
        byId("job-error").classList.add("notice-error");
        notify(byId("job-error"), sentence);
      },
    });
  }

  function render(job) {
    progress.render(job);
    review.update(job);
    // A review is cancelled with its own button, which says what that means.
    const running = UNDER_WAY.has(job.status);
    show(cancelButton, running);
    cancelButton.disabled = Boolean(job.cancel_requested);
    setText(cancelButton, job.cancel_requested ? "Cancelling…" : "Cancel import");
    show(retryButton, RETRYABLE.has(job.status));
    undo.render(job);
    const prefectUrl = safeHttpUrl(job.flow_run_url);
    show(prefectLink, Boolean(prefectUrl));
    if (prefectUrl) prefectLink.href = prefectUrl;
    else prefectLink.removeAttribute("href");
    const statusChanged = job.status !== lastStatus;
    if (statusChanged) {
      lastStatus = job.status;
      if (TERMINAL.has(job.status)) {
        notify(connection, "");
        errors.load(job.job_id);
      } else {
        errors.hide();
      }
    }
    onChange(job, { statusChanged });
  }

  async function act(action) {
    const button = action === "cancel" ? cancelButton : retryButton;
    button.disabled = true;
    notify(actionMessage, "");
    const answer = await requestJson("POST", jobPath(jobId, action));
    button.disabled = false;
    if (!answer.ok) {
      notify(actionMessage, describeAnswer(answer.status, answer.data));
      return;
    }
    if (action === "cancel") {
      // The stream may have shown the job cancelled before this answer came back.
      if (TERMINAL.has(lastStatus)) return;
      cancelButton.disabled = true;
      setText(cancelButton, "Cancelling…");
      progress.say("Cancel requested; the import stops after the batch in flight.");
    } else {
      errors.hide();
      follow();
    }
  }

  cancelButton.addEventListener("click", () => act("cancel"));
  retryButton.addEventListener("click", () => act("retry"));

  return {
    open(id) {
      if (id === jobId && stopFollowing) return;
      this.close();
      jobId = id;
      card.classList.remove("is-missing");
      show(card, true);
      follow();
    },
    close() {
      stopFollowing?.();
      stopFollowing = null;
      jobId = null;
      progress.reset();
      errors.hide();
      review.hide();
      notify(actionMessage, "");
      notify(connection, "");
      notify(byId("job-error"), "");
      show(cancelButton, false);
      show(retryButton, false);
      undo.hide();
      show(prefectLink, false);
      show(card, false);
    },
    /** Follow the open job again (after an API key was entered). */
    refollow() {
      if (jobId) follow();
    },
    get jobId() {
      return jobId;
    },
  };
}

/** The URL if it is http(s), else null: a link's href must never run script. */
function safeHttpUrl(text) {
  if (!text) return null;
  try {
    const url = new URL(text, document.baseURI);
    return url.protocol === "http:" || url.protocol === "https:" ? url.toString() : null;
  } catch {
    return null;
  }
}
