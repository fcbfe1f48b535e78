// The API key form: shown when the API answers 401, it keeps the key for this tab.

import { apiKey, onKeyNeeded, saveApiKey } from "./auth.js";
import { byId, notify, show } from "./dom.js";

/** Wire the form; `onSaved()` runs after a key is entered, to repeat what was refused. */
export function setUpKeyForm({ onSaved }) {
  const card = byId("api-key");
  const form = byId("api-key-form");
  const input = byId("api-key-input");
  const message = byId("api-key-message");

  onKeyNeeded(({ hadKey }) => {
    if (hadKey && apiKey()) {
      // The key in use was refused (a typo, or the service changed its keys): forget it.
      saveApiKey(null);
      notify(message, "The service did not accept that key; check it and enter it again.");
    }
    if (card.hidden) {
      show(card, true);
      input.focus();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      notify(message, "Enter the API key you were given.");
      input.focus();
      return;
    }
    saveApiKey(key);
    input.value = "";
    notify(message, "");
    show(card, false);
    onSaved();
  });
}
