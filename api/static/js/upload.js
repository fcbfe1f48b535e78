// The upload form: pick or drop one file, choose options, POST it and hand the new job on.

import { describeAnswer, uploadImport } from "./api.js";
import { byId, el, notify, replaceChildren, setText } from "./dom.js";
import { formatBytes } from "./format.js";
import { DETECT, fillSelect } from "./reading.js";

const READING_SELECTS = { encoding: "encoding-select", delimiter: "delimiter-select", decimal: "decimal-select" };

/**
 * Wire the form. `onStarted(jobId)` follows an accepted upload; `onOpenJob(jobId)` opens the
 * job that already imports the same file (the 409 answer).
 */
export function setUpUpload({ onStarted, onOpenJob }) {
  const limit = uploadLimit();
  const form = byId("upload-form");
  const input = byId("file-input");
  const zone = byId("dropzone");
  const info = byId("file-info");
  const button = byId("upload-button");
  const state = byId("upload-state");
  const message = byId("upload-message");
  let chosen = null;
  let busy = false;
  for (const [name, id] of Object.entries(READING_SELECTS)) fillSelect(byId(id), name);

  function choose(file, note = "") {
    chosen = file;
    notify(message, "");
    if (!file) {
      setText(info, "No file chosen.");
      return;
    }
    replaceChildren(
      info,
      el("strong", { className: "file-name" }, file.name),
      ` · ${formatBytes(file.size)}`,
      note ? ` · ${note}` : "",
      limit && file.size > limit ? ` · larger than the ${formatBytes(limit)} limit` : "",
    );
  }

  input.addEventListener("change", () => choose(input.files[0] ?? null));

  // The whole zone opens the picker; the label inside already does, so skip clicks on it.
  zone.addEventListener("click", (event) => {
    if (!busy && !event.target.closest("label, input")) input.click();
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("is-dragging");
    });
  }
  for (const name of ["dragleave", "dragend"]) {
    zone.addEventListener(name, () => zone.classList.remove("is-dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    const files = event.dataTransfer?.files ?? [];
    if (!files.length || busy) return;
    input.value = "";
    choose(files[0], files.length > 1 ? "only the first of the dropped files is imported" : "");
  });
  // A file dropped beside the zone would make the browser leave the page to open it.
  for (const name of ["dragover", "drop"]) {
    window.addEventListener(name, (event) => {
      if (!zone.contains(event.target)) event.preventDefault();
    });
  }

  async function submit({ force = false } = {}) {
    if (busy) return;
    if (!chosen) {
      notify(message, "Choose a file to import first.");
      input.focus();
      return;
    }
    busy = true;
    button.disabled = true;
    zone.classList.add("is-busy");
    notify(message, "");
    setText(state, `Uploading ${chosen.name}…`);
    const body = new FormData();
    body.append("file", chosen, chosen.name);
    const sheet = byId("sheet-input").value.trim();
    if (sheet) body.append("sheet", sheet);
    body.append("on_error", byId("on-error-select").value);
    body.append("mode", byId("mode-select").value);
    const dryRun = byId("dry-run-input").checked;
    body.append("dry_run", dryRun ? "true" : "false");
    // A dry run writes nothing, so there is nothing to review.
    body.append("review", byId("review-input").checked && !dryRun ? "true" : "false");
    // Left at "Detect", the server decides from the file.
    for (const [name, id] of Object.entries(READING_SELECTS)) {
      const value = byId(id).value;
      if (value !== DETECT) body.append(name, value);
    }
    if (force) body.append("force", "true");
    const answer = await uploadImport(body, (sent, total) => {
      const percent = Math.floor((100 * sent) / total);
      setText(state, percent < 100 ? `Uploading… ${percent} %` : "Checking the file…");
    });
    busy = false;
    button.disabled = false;
    zone.classList.remove("is-busy");
    setText(state, "");
    if (answer.ok) {
      input.value = "";
      choose(null);
      onStarted(answer.data.job_id);
      return;
    }
    showRefusal(answer);
  }

  function showRefusal({ status, data }) {
    const text = status === 0
      ? "The upload was cut off before the server answered; check the connection and the file "
        + `size (at most ${limit ? formatBytes(limit) : "the service's limit"}), then try again.`
      : describeAnswer(status, data);
    if (status === 409 && data?.job_id) {
      replaceChildren(
        message,
        el("p", {}, text),
        el("div", { className: "actions" },
          el("button", {
            type: "button", className: "button button-small",
            onclick: () => { notify(message, ""); onOpenJob(data.job_id); },
          }, data.status === "awaiting_review" ? "Open its review" : "Open the running import"),
          el("button", {
            type: "button", className: "button button-small",
            onclick: () => submit({ force: true }),
          }, "Import it again anyway"),
        ),
      );
      message.hidden = false;
    } else {
      notify(message, text);
    }
  }

  const reviewInput = byId("review-input");
  byId("dry-run-input").addEventListener("change", (event) => {
    reviewInput.disabled = event.target.checked;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
}

/** The service's upload limit in bytes, as the page was served with it; null if unknown. */
function uploadLimit() {
  const value = Number(document.querySelector('meta[name="max-upload-bytes"]')?.content);
  return Number.isFinite(value) && value > 0 ? value : null;
}
