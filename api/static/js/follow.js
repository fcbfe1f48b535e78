// Follow one job: its event stream while it flows, polling `/progress` every 2 s after.
// The stream is read with fetch, not EventSource, so it carries the API key as a header.
// A stream the server ends on purpose (its longest life) says `retry:` first: it is opened
// again after that many milliseconds, as EventSource would.

import { describeAnswer, jobPath, openStream, requestJson } from "./api.js";
import { TERMINAL } from "./statuses.js";

export const POLL_INTERVAL_MS = 2000;

/**
 * Start following `jobId`. Callbacks: `onJob(job)` for every known state, `onConnection(mode)`
 * with "live", "polling", "lost" or "key" (the API wants a key; following stops until the
 * caller starts again), `onMissing(sentence)` when the job cannot be shown.
 * Returns a function that stops following.
 */
export function followJob(jobId, { onJob, onConnection, onMissing }) {
  let stopped = false;
  let streaming = null;
  let timer = null;
  let reconnectMs = null;

  function stop() {
    stopped = true;
    streaming?.abort();
    streaming = null;
    clearTimeout(timer);
  }

  function deliver(job) {
    onJob(job);
    if (TERMINAL.has(job.status)) stop();
  }

  /** Handle a refused read; true when following must stop. */
  function refused(answer) {
    if (answer.status === 401) {
      stop();
      onConnection("key");
      return true;
    }
    if (answer.status === 404 || answer.status === 422) {
      stop();
      onMissing(describeAnswer(answer.status, answer.data));
      return true;
    }
    return false;
  }

  async function poll() {
    if (stopped) return;
    const answer = await requestJson("GET", jobPath(jobId, "progress"));
    if (stopped) return;
    if (answer.ok) deliver(answer.data);
    else if (refused(answer)) return;
    else onConnection("lost");
    if (!stopped) timer = setTimeout(poll, POLL_INTERVAL_MS);
  }

  function fallBack() {
    if (stopped) return;
    streaming = null;
    onConnection("polling");
    timer = setTimeout(poll, POLL_INTERVAL_MS);
  }

  function receive(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      else if (/^retry: *\d+$/.test(line)) reconnectMs = Number(line.slice(6));
    }
    if (stopped || !data.length || (name !== "progress" && name !== "done")) return;
    onConnection("live");
    deliver(JSON.parse(data.join("\n")));
  }

  async function stream() {
    streaming = new AbortController();
    reconnectMs = null;
    const response = await openStream(jobPath(jobId, "events"), streaming.signal);
    if (stopped) return;
    if (!response || !response.ok || !response.body) {
      if (response?.status === 401) refused({ status: 401 });
      else fallBack();
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          receive(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // Cut by the network or a proxy (or aborted by stop()): polling takes over below.
    }
    if (!stopped && reconnectMs !== null) {
      streaming = null;
      timer = setTimeout(stream, reconnectMs);
      return;
    }
    // Any other stream that ends before `done` was cut; polling is cheaper than replaying it.
    fallBack();
  }

  // One plain read first: it shows the job at once and tells a missing job from a dropped stream.
  (async () => {
    const answer = await requestJson("GET", jobPath(jobId, "progress"));
    if (stopped || refused(answer)) return;
    if (!answer.ok) {
      onConnection("lost");
      timer = setTimeout(poll, POLL_INTERVAL_MS);
      return;
    }
    deliver(answer.data);
    if (!stopped) stream();
  })();

  return stop;
}
