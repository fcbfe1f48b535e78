// How a file is read (a text file's encoding and delimiter, the decimal mark of numbers
// written as text): the choices the upload form and a review offer, and the words for
// what the server did.

import { el } from "./dom.js";

export const DETECT = "";

// Values are the codec names the server reports back (`codecs.lookup(...).name`), so the
// review finds the one it detected among them. Shift_JIS and EUC-KR are their Windows
// supersets, as Excel writes them and as the server reads a detected one.
export const CHOICES = {
  encoding: [
    { value: "utf-8", label: "UTF-8" },
    { value: "cp1252", label: "Windows-1252 (Western Europe)", short: "Windows-1252" },
    { value: "cp1250", label: "Windows-1250 (Central Europe)", short: "Windows-1250" },
    { value: "cp1251", label: "Windows-1251 (Cyrillic)", short: "Windows-1251" },
    { value: "iso8859-15", label: "ISO-8859-15" },
    { value: "utf-16", label: "UTF-16" },
    { value: "cp932", label: "Shift_JIS" },
    { value: "cp949", label: "EUC-KR" },
    { value: "gb18030", label: "GB18030" },
  ],
  delimiter: [
    { value: ",", label: "Comma ( , )", short: "Comma" },
    { value: ";", label: "Semicolon ( ; )", short: "Semicolon" },
    { value: "tab", label: "Tab" },
    { value: "|", label: "Pipe ( | )", short: "Pipe" },
  ],
  decimal: [
    { value: ".", label: "Point ( . )", short: "Point" },
    { value: ",", label: "Comma ( , )", short: "Comma" },
  ],
};

// The server's `how` in the words a person would use; anything else is shown as it comes.
const HOW_WORDS = {
  given: "chosen",
  "saved with the mapping": "saved with the column mapping",
  "byte order mark": "from its byte order mark",
  "valid UTF-8": "detected",
  default: "assumed: no value decides it",
};

/** A reading value as the select holds it (the server reports a tab as the character). */
export function choiceValue(name, value) {
  if (value === null || value === undefined) return DETECT;
  return name === "delimiter" && value === "\t" ? "tab" : String(value);
}

/** How one choice was made, in words: "detected", "decided by '9,99' and 3 more". */
export function howWords(name, entry) {
  if (name === "decimal" && entry.how === "decided by the values" && entry.detail) {
    return entry.detail;
  }
  return HOW_WORDS[entry.how] ?? entry.how ?? "";
}

/**
 * Fill `select` with the choices for `name` (encoding, delimiter, decimal). `used` is the
 * reading's entry ({value, label, how}) when the server read the file, shown selected with
 * how it was decided; `detect` offers going back to detection (a person chose before).
 * The select remembers what it started with, so `changedChoices` sends only changes.
 */
export function fillSelect(select, name, { used = null, detect = true, initial = DETECT } = {}) {
  const options = [];
  const start = used ? choiceValue(name, used.value) : initial;
  if (detect || !used) options.push(el("option", { value: DETECT }, "Detect"));
  let found = false;
  for (const choice of CHOICES[name]) {
    const isUsed = used !== null && choice.value === start;
    found ||= isUsed;
    const text = isUsed ? `${choice.short ?? choice.label} (${howWords(name, used)})` : choice.label;
    options.push(el("option", { value: choice.value }, text));
  }
  if (used && !found) {
    // Read in one the list does not name (UTF-16LE from its mark, a given koi8-r).
    const label = used.label ?? start;
    options.unshift(el("option", { value: start }, `${label} (${howWords(name, used)})`));
  }
  select.replaceChildren(...options);
  select.value = start;
  select.dataset.initial = start;
}

/** The choices among `selects` ({name: select}) a person changed, as the API takes them. */
export function changedChoices(selects) {
  const changed = {};
  for (const [name, select] of Object.entries(selects)) {
    if (!select.closest("[hidden]") && select.value !== select.dataset.initial) {
      changed[name] = select.value;
    }
  }
  return changed;
}

/**
 * How a file was read, in words: "Read as Windows-1252 (detected), ';'-separated (detected),
 * decimal mark ',' (decided by '9,99' and 3 more)"; `hows: false` names how only for the
 * encoding. "" when nothing was recorded.
 */
export function describeReading(reading, { hows = true } = {}) {
  const { encoding, delimiter, decimal } = reading ?? {};
  const how = (name, entry) => (hows || name === "encoding" ? howWords(name, entry) : "");
  const said = (text, name, entry) => {
    const words = how(name, entry);
    return words ? `${text} (${words})` : text;
  };
  const parts = [];
  if (encoding) parts.push(said(encoding.label ?? encoding.value, "encoding", encoding));
  if (delimiter) {
    parts.push(said(`${delimiter.label ?? `'${delimiter.value}'`}-separated`, "delimiter", delimiter));
  }
  if (decimal) parts.push(said(`decimal mark '${decimal.value}'`, "decimal", decimal));
  if (!parts.length) return "";
  // A workbook's number cells are numbers already; the mark is for those written as text.
  return encoding || delimiter ? `Read as ${parts.join(", ")}`
    : `Prices and quantities written as text: ${parts.join(", ")}`;
}

/** A finished job's reading in one line: "Read as Windows-1252 (detected), ';'-separated,
 * decimal mark ','"; "" for a workbook whose decimal mark was only assumed. */
export function readingLine(reading) {
  const { encoding, delimiter, decimal } = reading ?? {};
  if (!encoding && !delimiter && (!decimal || decimal.how === "default")) return "";
  return describeReading(reading, { hows: false });
}
