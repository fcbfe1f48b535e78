"""One poller per followed job: it reads the job and hands each change to all its followers.

Each event stream used to read the database four times a second by itself, so a hundred
open tabs on one import made four hundred reads a second. Now the first follower of a job
starts its poller, later ones join it, and the poller stops as soon as the last follower
leaves or the job ends. A follower that falls behind gets the newest state rather than
every state in between: each one is the whole job, so skipping one loses nothing.

The hub also counts followers, so the number of open streams has a cap, in all and for
each client (an API key's label, or an address): one client cannot hold every place.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from starlette.concurrency import run_in_threadpool

from api.schemas import JobProgress
from api.views import JobLinks, job_progress
from db.repository import get_job
from db.session import session_scope

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
# Fields that change with the clock alone; a change in them is no news.
CLOCK_FIELDS = frozenset({"elapsed_s", "rows_per_s", "eta_s"})
# What a client refused for the cap is told to wait before it tries again.
RETRY_AFTER_S = 5

# A job's followers share one poller per set of links (the links are part of each state,
# and a service behind two path prefixes gives different ones).
Key = tuple[uuid.UUID, JobLinks]
Reader = Callable[[uuid.UUID, JobLinks], Awaitable[JobProgress | None]]


class StreamsFull(Exception):
    """As many followers as a cap allows are open already: in all, or of one client."""

    def __init__(self, limit: int, *, of_client: bool = False) -> None:
        if of_client:
            said = (
                f"this client has {limit} event streams open, the most one client may have;"
                f" close one and try again in {RETRY_AFTER_S} s, or read the job's progress"
                " instead"
            )
        else:
            said = (
                f"too many event streams are open (the most is {limit}); try again in"
                f" {RETRY_AFTER_S} s, or read the job's progress instead"
            )
        super().__init__(said)


class FollowingFailed(Exception):
    """The poller could not read the job, so there is nothing more to follow."""


async def read_job_progress(job_id: uuid.UUID, links: JobLinks) -> JobProgress | None:
    """The job as its event stream shows it, or None when there is no such job."""
    return await run_in_threadpool(_read, job_id, links)


def _read(job_id: uuid.UUID, links: JobLinks) -> JobProgress | None:
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        return None if job is None else job_progress(job, links)


class _Channel:
    """One followed job: its poller, its followers and what the poller read last."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.followers: set[Follower] = set()
        self.current: JobProgress | None = None
        self.version = 0  # counts the changes published; 0: nothing read yet
        self.over = False  # the poller has ended
        self.failed = False  # ... because a read raised
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        for follower in self.followers:
            follower.wake.set()


class Follower:
    """One client's view of a job, from joining its poller until leaving it."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self._seen = 0
        self.wake = asyncio.Event()

    async def next(self) -> JobProgress | None:
        """The job now at first, then its next change; None once there is no more (the job
        is gone, or a final state was given already). Raises `FollowingFailed`."""
        channel = self._channel
        while self._seen == channel.version and not channel.over:
            # Nothing runs between the check and the clear, so no change is missed.
            self.wake.clear()
            await self.wake.wait()
        if self._seen == channel.version:
            if channel.failed:
                raise FollowingFailed(f"reading import job {channel.key[0]} failed")
            return None
        self._seen = channel.version
        return channel.current


class Hub:
    """The pollers of one event loop, and the count of followers for the cap."""

    def __init__(self, read: Reader = read_job_progress) -> None:
        self.loop = asyncio.get_running_loop()
        self.reads = 0  # every read of a job, for the tests and for curiosity
        self._read = read
        self._channels: dict[Key, _Channel] = {}
        self._followers = 0
        self._by_client: dict[str, int] = {}

    @property
    def pollers(self) -> int:
        """Pollers running now."""
        return len(self._channels)

    @property
    def followers(self) -> int:
        """Followers (open streams) now."""
        return self._followers

    @asynccontextmanager
    async def follow(
        self,
        job_id: uuid.UUID,
        links: JobLinks,
        *,
        limit: int,
        client: str,
        per_client: int,
    ) -> AsyncIterator[Follower]:
        """Join the job's poller (starting it if none runs) for the duration of the block.

        Raises `StreamsFull` when `limit` followers are open already, or `per_client` of
        `client`. Leaving, however the block ends, stops the poller if it was the last
        follower.
        """
        # No await between the checks and the counts: the caps hold under any concurrency.
        if self._followers >= limit:
            raise StreamsFull(limit)
        held = self._by_client.get(client, 0)
        if held >= per_client:
            raise StreamsFull(per_client, of_client=True)
        key = (job_id, links)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(key)
            channel.task = asyncio.create_task(self._poll(channel), name=f"poll job {job_id}")
        follower = Follower(channel)
        channel.followers.add(follower)
        self._followers += 1
        self._by_client[client] = held + 1
        try:
            yield follower
        finally:
            self._followers -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
            channel.followers.discard(follower)
            if not channel.followers:
                await self._stop(channel)

    async def _stop(self, channel: _Channel) -> None:
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]
        task = channel.task
        if task is None or task.done():
            return
        task.cancel()
        # Wait for it even while the leaving client's own task is being cancelled, so no
        # poller outlives its followers.
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})

    async def _poll(self, channel: _Channel) -> None:
        job_id, links = channel.key
        last_news: dict[str, object] | None = None
        try:
            while True:
                progress = await self._read(job_id, links)
                self.reads += 1
                channel.current = progress
                if progress is None:
                    channel.version += 1
                    return
                news = progress.model_dump(mode="json", exclude=set(CLOCK_FIELDS))
                if news != last_news:
                    last_news = news
                    channel.version += 1
                    channel.wake()
                if progress.status.is_terminal:
                    return
                await anyio.sleep(POLL_INTERVAL_S)
        except Exception:
            log.warning("reading import job %s for its followers failed", job_id, exc_info=True)
            channel.failed = True
        finally:
            channel.over = True
            channel.wake()
            if self._channels.get(channel.key) is channel:
                del self._channels[channel.key]
