"""The Prometheus metrics: request latencies this process timed, job figures from the database.

Latencies are recorded by `RequestTimer` into a registry of the app's own (never
prometheus_client's global one), so two apps in one process, as in the tests, keep
separate counts. The job figures are not kept here at all: `exposition` renders a
`JobStats` read at scrape time, so they are the same whichever API process is asked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Literal

from fastapi import Request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itemsheet.jobs.job_stats import START_DELAY_BOUNDS_S, JobStats

Endpoint = Literal["upload", "progress"]
UPLOAD_PATH = "/api/excel/import"
PROGRESS_PATH = re.compile(r"/api/excel/import/[^/]+/progress")
# An upload of the largest file over a slow link takes tens of seconds; a progress read
# about a millisecond.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RequestMetrics:
    """One app's registry and the request latencies it records."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "importer_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer, by endpoint:"
            " upload (POST /api/excel/import) and progress (GET .../{id}/progress).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        for endpoint in ("upload", "progress"):
            self.latency.labels(endpoint)  # shown as 0 before the first request

    def observe(self, endpoint: Endpoint, seconds: float) -> None:
        """Record one request's latency."""
        self.latency.labels(endpoint).observe(seconds)


def get_request_metrics(request: Request) -> RequestMetrics:
    """The metrics of the app serving `request`."""
    metrics: RequestMetrics = request.app.state.request_metrics
    return metrics


def timed_endpoint(method: str, path: str) -> Endpoint | None:
    """Which timed endpoint a request is for, if any (path without the app's root path)."""
    path = path.rstrip("/")
    if method == "POST" and path == UPLOAD_PATH:
        return "upload"
    if method == "GET" and PROGRESS_PATH.fullmatch(path):
        return "progress"
    return None


class RequestTimer:
    """ASGI middleware timing uploads and progress reads until their answer is sent.

    The clock stops at the answer's last byte, not when the app returns: an upload's
    background work after the answer is not the client's wait.
    """

    def __init__(self, app: ASGIApp, *, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, timing it when it is one of the timed endpoints."""
        endpoint = None
        if scope["type"] == "http":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            endpoint = timed_endpoint(scope["method"], path)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        async def timed_send(message: Message) -> None:
            nonlocal answered
            await send(message)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and not answered:
                answered = True
                self.metrics.observe(endpoint, time.perf_counter() - started)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not answered:  # the client left, or the server answers the error itself
                self.metrics.observe(endpoint, time.perf_counter() - started)


def exposition(metrics: RequestMetrics, stats: JobStats) -> bytes:
    """The Prometheus text format of the app's latencies and the job figures."""
    return generate_latest(_Scrape(metrics.registry, job_families(stats)))


class _Scrape:
    """One scrape: the registry's metrics, then the job figures read for it."""

    def __init__(self, registry: CollectorRegistry, families: Iterable[Metric]) -> None:
        self._registry = registry
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """What `generate_latest` renders."""
        yield from self._registry.collect()
        yield from self._families


def job_families(stats: JobStats) -> list[Metric]:
    """The job figures as metric families."""
    jobs = GaugeMetricFamily(
        "importer_jobs", "Import jobs by status and source.", labels=["status", "source"]
    )
    for (status, source), count in stats.jobs.items():
        jobs.add_metric([status.value, source.value], count)
    rows = CounterMetricFamily(
        "importer_rows",
        "Data rows of imports by outcome (created, updated, unchanged, skipped by the mode,"
        " failed); dry runs"
        " are not counted.",
        labels=["outcome"],
    )
    for outcome, count in stats.rows.items():
        rows.add_metric([outcome], count)
    pending = GaugeMetricFamily(
        "importer_pending_jobs", "Jobs waiting to start (status pending).", value=stats.pending
    )
    without_run = GaugeMetricFamily(
        "importer_pending_jobs_without_run",
        "Pending jobs whose Prefect flow run has not been created yet.",
        value=stats.pending_without_run,
    )
    failed = GaugeMetricFamily(
        "importer_failed_jobs",
        "Failed jobs by the class of their one-line reason.",
        labels=["reason"],
    )
    for failure, count in stats.failures.items():
        failed.add_metric([failure.value], count)
    delays = HistogramMetricFamily(
        "importer_start_delay_seconds",
        "Seconds from a job's creation (the upload) to the start of its first attempt"
        " (processing), by source; every job that started.",
        labels=["source"],
    )
    bounds = [str(float(b)) for b in START_DELAY_BOUNDS_S]  # le="0.5", le="1.0", ...
    for source, delay in stats.start_delays.items():
        buckets = [*zip(bounds, delay.at_most, strict=True), ("+Inf", delay.count)]
        delays.add_metric([source.value], buckets, delay.sum_s)
    return [jobs, rows, pending, without_run, failed, delays]
