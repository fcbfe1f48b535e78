// Follow one job: Server-Sent Events while they flow, polling `/progress` every 2 s after.

import { apiUrl, describeAnswer, jobPath, requestJson } from "./api.js";

export const POLL_INTERVAL_MS = 2000;
export const FINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);

/**
 * Start following `jobId`. Callbacks: `onJob(job)` for every known state, `onConnection(mode)`
 * with "live", "polling" or "lost", `onMissing(sentence)` when the job cannot be shown.
 * Returns a function that stops following.
 */
export function followJob(jobId, { onJob, onConnection, onMissing }) {
  let stopped = false;
  let source = null;
  let timer = null;

  function stop() {
    stopped = true;
    source?.close();
    source = null;
    clearTimeout(timer);
  }

  function deliver(job) {
    onJob(job);
    if (FINAL_STATUSES.has(job.status)) stop();
  }

  async function poll() {
    if (stopped) return;
    const answer = await requestJson("GET", jobPath(jobId, "progress"));
    if (stopped) return;
    if (answer.ok) {
      deliver(answer.data);
    } else if (answer.status === 404 || answer.status === 422) {
      stop();
      onMissing(describeAnswer(answer.status, answer.data));
      return;
    } else {
      onConnection("lost");
    }
    if (!stopped) timer = setTimeout(poll, POLL_INTERVAL_MS);
  }

  function stream() {
    source = new EventSource(apiUrl(jobPath(jobId, "events")));
    const receive = (event) => {
      if (stopped) return;
      onConnection("live");
      deliver(JSON.parse(event.data));
    };
    source.addEventListener("progress", receive);
    source.addEventListener("done", receive);
    // EventSource would reconnect by itself, replaying from the start; polling is cheaper
    // and works through proxies that cut long responses.
    source.addEventListener("error", () => {
      if (stopped) return;
      source.close();
      source = null;
      onConnection("polling");
      timer = setTimeout(poll, POLL_INTERVAL_MS);
    });
  }

  // One plain read first: it shows the job at once and tells a missing job from a dropped stream.
  (async () => {
    const answer = await requestJson("GET", jobPath(jobId, "progress"));
    if (stopped) return;
    if (answer.status === 404 || answer.status === 422) {
      stop();
      onMissing(describeAnswer(answer.status, answer.data));
      return;
    }
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
