// The template and export links: plain downloads, or, when the tab has an API key (which a
// link cannot send), fetched with the key and then saved.

import { describeAnswer } from "./api.js";
import { apiKey, noteStatus, withKey } from "./auth.js";
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
      let response;
      try {
        response = await fetch(link.href, { headers: withKey(), cache: "no-store" });
      } catch {
        notify(message, describeAnswer(0, null));
        return;
      }
      noteStatus(response.status);
      if (!response.ok) {
        notify(message, describeAnswer(response.status, await response.json().catch(() => null)));
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const save = Object.assign(document.createElement("a"), { href: url, download: link.download });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  }
}
