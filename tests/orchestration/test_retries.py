"""Prefect calls tried again soon when Prefect answers 503 (a busy SQLite database): the
503 is made here, since a real server gives it only now and then."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

from orchestration.retries import RETRY_PAUSES_S, soon_again


def answered(status: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://prefect/api/deployments/x/create_flow_run")
    response = httpx.Response(status, request=request)
    return PrefectHTTPStatusError(f"{status}", request=request, response=response)


class Prefect:
    """Answers with `statuses` in turn (an int: that error), then "run"; notes what the
    client's own retry setting was at each call."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.retries_seen: list[int] = []

    async def call(self) -> str:
        self.retries_seen.append(PREFECT_CLIENT_MAX_RETRIES.value())
        if self.statuses:
            raise answered(self.statuses.pop(0))
        return "run"


def test_a_busy_answer_is_tried_again_soon_without_prefects_own_backoff() -> None:
    prefect = Prefect(503, 503)

    assert asyncio.run(soon_again(prefect.call)) == "run"
    assert prefect.retries_seen == [0, 0, 0]


def test_once_the_quick_tries_are_spent_prefects_own_retries_take_over() -> None:
    prefect = Prefect(*[503] * len(RETRY_PAUSES_S))

    assert asyncio.run(soon_again(prefect.call)) == "run"
    assert prefect.retries_seen == [0] * len(RETRY_PAUSES_S) + [PREFECT_CLIENT_MAX_RETRIES.value()]


def test_other_answers_are_not_tried_again() -> None:
    prefect = Prefect(404)

    with pytest.raises(PrefectHTTPStatusError):
        asyncio.run(soon_again(prefect.call))
    assert prefect.retries_seen == [0]
