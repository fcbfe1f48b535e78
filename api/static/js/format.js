// How numbers, sizes, durations and times read on the page (English, fixed separators).

const numbers = new Intl.NumberFormat("en-US");
const decimals = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const stamps = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

/** 9713 -> "9,713". */
export function formatCount(value) {
  return numbers.format(value ?? 0);
}

/** 52428800 -> "50 MiB"; binary units, as the server's limit is stated. */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${formatCount(bytes)} bytes`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${decimals.format(value)} ${units[unit]}`;
}

/** Seconds as "4.2 s", "3 min 05 s" or "1 h 02 min"; "–" when unknown. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 10) return `${decimals.format(Math.max(seconds, 0))} s`;
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** Rows per second, e.g. "1,234 rows/s"; "–" before the first batch. */
export function formatRate(rowsPerSecond) {
  return rowsPerSecond ? `${formatCount(Math.round(rowsPerSecond))} rows/s` : "–";
}

/** An ISO timestamp in the reader's local time; "–" when missing. */
export function formatTime(iso) {
  return iso ? stamps.format(new Date(iso)) : "–";
}

/** A status word as a label: "processing" -> "Processing". */
export function statusLabel(status) {
  if (!status) return "";
  const words = status.replaceAll("_", " ");
  return words[0].toUpperCase() + words.slice(1);
}
