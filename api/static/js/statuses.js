// Generated from db.enums.JobStatus by `uv run python -m api.statuses`: do not edit.
// The server's sets of statuses, so the page asks a job's status what it does.

/** Ended: the job will not change any more (unless retried). */
export const TERMINAL = new Set(["completed", "failed", "cancelled", "undone"]);

/** Asked to run or running: it may write at any moment (no review holds it). */
export const UNDER_WAY = new Set(["pending", "processing"]);

/** Ended without writing all it should: a person may run it again. */
export const RETRYABLE = new Set(["failed", "cancelled"]);

/** Ended, and what it wrote can be undone (then it is `undone`). */
export const UNDOABLE = new Set(["completed", "failed", "cancelled"]);
