// The template and export links: plain downloads, or, when the tab has an API key (which a
// link cannot send), fetched with the key and then saved.

import { describeAnswer, downloadUrl } from "./api.js";
import { apiKey } from "./auth.js";
import { byId, notify } from "./dom.js";

const LINKS = ["template-link", "template-csv-link", "export-link", "export-csv-link"];

export function setUpFileLinks() {
  const message = byId("file-links-message");
  for (const id of LINKS) {
    const link = byId(id);
    link.addEventListener("click", async (event) => {
      notify(message, "");
      if (!apiKey()) return;
      event.preventDefault();
      const answer = await downloadUrl(link.href, link.download);
      if (!answer.ok) notify(message, describeAnswer(answer.status, answer.data));
    });
  }
}
