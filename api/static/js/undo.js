// Undo of a finished import: the button (with "restore items changed since too") and, on an
// undo job or an undone import, a line that says what the undo did and links the other job.

import { describeAnswer, jobPath, requestJson } from "./api.js";
import { byId, el, notify, replaceChildren, show } from "./dom.js";
import { UNDOABLE } from "./statuses.js";


/** The undo controls of the job card; `onStarted(undoJobId)` opens the new undo job. */
export function createUndoControls({ onStarted }) {
  const box = byId("undo-controls");
  const button = byId("undo-button");
  const force = byId("undo-force");
  const note = byId("undo-note");
  const message = byId("job-action-message");
  let job = null;

  button.addEventListener("click", async () => {
    if (!job) return;
    button.disabled = true;
    notify(message, "");
    const params = force.checked ? { force: "true" } : {};
    const answer = await requestJson("POST", jobPath(job.job_id, "undo"), params);
    button.disabled = false;
    if (!answer.ok) {
      notify(message, describeAnswer(answer.status, answer.data));
      return;
    }
    onStarted(answer.data.job_id);
  });

  function link(id, text) {
    return el("a", { href: `?job=${encodeURIComponent(id)}` }, text);
  }

  return {
    render(shown) {
      job = shown;
      const undo = shown.source === "undo";
      show(box, UNDOABLE.has(shown.status) && !shown.dry_run && !undo);
      if (undo && shown.undo_of) {
        const counts =
          `: ${shown.deleted.toLocaleString()} created items deleted, ` +
          `${shown.updated.toLocaleString()} items restored, ` +
          `${shown.failed.toLocaleString()} left alone (changed since the import).`;
        replaceChildren(note, "Undo of ", link(shown.undo_of, "this import"), counts);
        show(note, true);
      } else if (shown.status === "undone") {
        replaceChildren(note, "This import was undone; the counts are what it did.");
        show(note, true);
      } else {
        show(note, false);
      }
    },
    hide() {
      job = null;
      force.checked = false;
      show(box, false);
      show(note, false);
    },
  };
}
