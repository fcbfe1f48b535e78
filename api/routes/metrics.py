"""`GET /metrics`: the service's metrics in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.concurrency import run_in_threadpool

from api.deps import ReadSessionDep
from api.metrics import RequestMetrics, exposition, get_request_metrics
from itemsheet.jobs.job_stats import read_job_stats

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}}}},
)
async def metrics(
    session: ReadSessionDep,
    request_metrics: Annotated[RequestMetrics, Depends(get_request_metrics)],
) -> Response:
    """Jobs, rows, waiting jobs, failures and start delays from the database; the request
    latencies this process timed."""
    stats = await run_in_threadpool(read_job_stats, session)
    body = exposition(request_metrics, stats)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
