// A small bar chart of how many items would change by how much, drawn as inline SVG from
// the buckets the server counted in the preview pass: no chart library. Each chart has a
// text summary beside it (its caption, which also labels the image for screen readers).

import { el } from "./dom.js";
import { formatCount } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 150;
const TOP = 14;
const BOTTOM = 34;
const SIDE = 4;

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** The distribution in words: how many items in each non-empty range, and the threshold. */
export function describeDistribution(what, distribution) {
  if (!distribution.items) return `No stored item's ${what} would change.`;
  const parts = distribution.buckets
    .filter((b) => b.items > 0)
    // "3 by +50 to +900 %", "2 to 0"
    .map((b) => `${formatCount(b.items)} ${/^[-+\d]/.test(b.label) ? "by " : ""}${b.label}`);
  const beyond = distribution.buckets.filter((b) => b.beyond).reduce((n, b) => n + b.items, 0);
  const threshold = distribution.threshold
    ? ` ${formatCount(beyond)} lie beyond the guardrail's threshold (${distribution.threshold}).`
    : "";
  return `${formatCount(distribution.items)} stored items' ${what} would change: `
    + `${parts.join(", ")}.${threshold}`;
}

/** A figure: the bar chart of `distribution` and its summary as the caption. */
export function drawDistribution(id, what, distribution) {
  const buckets = distribution.buckets;
  const most = Math.max(1, ...buckets.map((b) => b.items));
  const step = (WIDTH - 2 * SIDE) / buckets.length;
  const base = HEIGHT - BOTTOM;
  const captionId = `${id}-summary`;
  const image = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": captionId,
  });
  image.append(svg("line", { class: "chart-axis", x1: SIDE, x2: WIDTH - SIDE, y1: base, y2: base }));
  buckets.forEach((bucket, k) => {
    const x = SIDE + k * step;
    const tall = bucket.items ? Math.max(2, ((base - TOP) * bucket.items) / most) : 0;
    const bar = svg("rect", {
      class: bucket.beyond ? "chart-bar beyond" : "chart-bar",
      x: x + 2, y: base - tall, width: Math.max(1, step - 4), height: tall,
      "data-bucket": bucket.label,
    });
    bar.append(svg("title", {}, `${bucket.label}: ${formatCount(bucket.items)} items`));
    image.append(bar);
    if (bucket.items) {
      image.append(svg("text", {
        class: "chart-count", x: x + step / 2, y: base - tall - 3, "text-anchor": "middle",
      }, formatCount(bucket.items)));
    }
    // Two lines under the bar: "-90 to" / "-50 %", so narrow bars keep their labels.
    const [first, ...rest] = bucket.label.split(" ");
    const lines = rest.length > 1 ? [`${first} ${rest[0]}`, rest.slice(1).join(" ")] : [bucket.label];
    lines.forEach((line, n) => image.append(svg("text", {
      class: "chart-label", x: x + step / 2, y: base + 11 + n * 10, "text-anchor": "middle",
    }, line)));
    // The threshold: a dashed line where the buckets beyond it begin or end.
    const next = buckets[k + 1];
    if (distribution.threshold && next && bucket.beyond !== next.beyond) {
      const at = x + step;
      image.append(svg("line", { class: "chart-threshold", x1: at, x2: at, y1: TOP - 8, y2: base }));
      if (!bucket.beyond) {
        image.append(svg("text", {
          class: "chart-threshold-label", x: at + 2, y: TOP - 2, "data-threshold": "",
        }, "threshold"));
      }
    }
  });
  return el("figure", { className: "chart", id },
    image,
    el("figcaption", { id: captionId }, describeDistribution(what, distribution)));
}
