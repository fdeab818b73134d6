"""Dynamic batching of encoder calls: concurrent raw queries of one modality run as one model call.

One ``Batcher`` per encoder: callers prepare their items themselves (tokens, pixels, mel frames) and
``submit`` them; a worker thread takes the first job waiting, adds every job already queued (and, while
queries come concurrently, waits up to ``wait`` seconds for more) until ``max_items``, runs the encoder once
over them all and hands each caller its own rows. A lone request never waits: with no one else preparing and
a last batch of one item, its batch runs at once, so batching adds no latency at concurrency 1; under load the
queries that arrive while a batch runs form the next one.

Bounds: the queue holds at most ``max_queued`` items; one more is refused at once with ``EncodersBusy`` (503,
Retry-After), never queued. A job whose deadline has passed is answered ``RequestTimeout`` without being run,
and a caller stops waiting at its deadline. ``close`` runs what is queued, stops the thread and turns
``submit`` into ``BatcherClosed`` (the caller then runs the encoder itself): a bundle's batchers are closed when
it is replaced or the app stops, so no thread outlives its bundle (docs/architecture.md, "Bundle").

Batching gives the same rows as running each job alone to float tolerance: the encoders pad text with an
attention mask (a padded row differs by ~3e-8), and images and mel windows have fixed shapes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from latent_bridge.service.errors import EncodersBusy, RequestTimeout
from latent_bridge.service.galleries.backend import Matrix

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_AFTER_SECONDS = 1
JOIN_SECONDS = 30.0  # how long close() waits for the batch running to finish


class BatcherClosed(Exception):
    """The batcher has been closed (its bundle replaced): run the encoder without it."""


@dataclass(frozen=True)
class BatchSettings:
    """How an encoder's batcher collects: ``max_items`` per call (1: no batcher), ``wait`` seconds at most for
    callers still preparing, ``max_queued`` items waiting at most, ``timeout`` named by ``RequestTimeout``."""

    max_items: int = 1
    wait: float = 0.002
    max_queued: int = 64
    timeout: float = 30.0


@dataclass(eq=False)
class _Job(Generic[T]):
    items: Sequence[T]
    deadline: float | None
    done: threading.Event = field(default_factory=threading.Event)
    rows: Matrix | None = None
    error: BaseException | None = None
    cancelled: bool = False


class Batcher(Generic[T]):
    """A queue and one worker thread running ``run`` over the items of many jobs at once."""

    def __init__(self, name: str, run: Callable[[list[T]], Matrix], settings: BatchSettings) -> None:
        self.name = name
        self.settings = settings
        self._run = run
        self._cond = threading.Condition()
        self._queue: deque[_Job[T]] = deque()
        self._queued_items = 0
        self._preparing = 0
        self._closed = False
        self.calls = 0  # model calls run
        self.items = 0  # items they ran
        self.jobs = 0  # jobs answered with rows
        self._last = 0  # items in the last batch: more than one says queries come concurrently
        self._thread = threading.Thread(target=self._work, name=f"encoder-batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return self._queued_items

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Tell the worker a job is on its way (the caller is decoding or tokenizing): while any is, a batch
        waits up to ``wait`` for it."""
        with self._cond:
            self._preparing += 1
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def submit(self, items: Sequence[T], deadline: float | None) -> Matrix:
        """The rows of ``items``, run in a batch with whatever else is queued. Raises ``EncodersBusy`` when the
        queue is full, ``RequestTimeout`` past the deadline, ``BatcherClosed`` once closed, or what the encoder
        raised."""
        job: _Job[T] = _Job(items, deadline)
        with self._cond:
            if self._closed:
                raise BatcherClosed(self.name)
            if self._queue and self._queued_items + len(items) > self.settings.max_queued:
                raise EncodersBusy(self.settings.max_queued, RETRY_AFTER_SECONDS)
            self._queue.append(job)
            self._queued_items += len(items)
            self._cond.notify_all()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not job.done.wait(left):
            with self._cond:
                job.cancelled = True  # the worker skips it if not yet taken
            raise RequestTimeout(self.settings.timeout)
        if job.error is not None:
            raise job.error
        assert job.rows is not None
        return job.rows

    def close(self, timeout: float = JOIN_SECONDS) -> None:
        """Refuse new jobs, let the worker finish the queued ones, and wait for its thread to end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("encoder batcher %s still running after %.0fs", self.name, timeout)

    # --- the worker ---------------------------------------------------------------------------------

    def _collect(self) -> list[_Job[T]] | None:
        """The next batch's jobs (None: closed and nothing queued). Called with the lock held."""
        while not self._queue:
            if self._closed:
                return None
            self._cond.wait()
        jobs: list[_Job[T]] = []
        count = 0
        until = time.monotonic() + self.settings.wait
        while True:
            while self._queue and count + len(self._queue[0].items) <= self.settings.max_items:
                job = self._take()
                if job is not None:
                    jobs.append(job)
                    count += len(job.items)
            if not jobs and self._queue:  # one job larger than a batch: run it alone
                job = self._take()
                if job is not None:
                    return [job]
                continue
            full = count >= self.settings.max_items or (self._queue and jobs)
            left = until - time.monotonic()
            expecting = self._preparing > 0 or self._last > 1
            if full or self._closed or not expecting or left <= 0:
                return jobs if jobs else self._collect()
            self._cond.wait(left)

    def _take(self) -> _Job[T] | None:
        job = self._queue.popleft()
        self._queued_items -= len(job.items)
        if job.cancelled:
            return None
        if job.deadline is not None and time.monotonic() > job.deadline:
            job.error = RequestTimeout(self.settings.timeout)
            job.done.set()
            return None
        return job

    def _work(self) -> None:
        while True:
            with self._cond:
                jobs = self._collect()
            if jobs is None:
                return
            self._answer(jobs)

    def _answer(self, jobs: list[_Job[T]]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            rows = self._run(items)
        except BaseException as exc:  # the callers get the encoder's error, the worker goes on
            for job in jobs:
                job.error = exc
                job.done.set()
            return
        self.calls += 1
        self.items += len(items)
        self._last = len(items)
        start = 0
        for job in jobs:
            job.rows = np.ascontiguousarray(rows[start : start + len(job.items)])
            start += len(job.items)
            self.jobs += 1
            job.done.set()


class Batchers:
    """A bundle's batchers, one per encoder, started by the first raw query that can use one and all closed with
    the bundle (``Bundle.close``); after that, the bundle's encoders run unbatched in their callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[str, Batcher[Any]] = {}
        self._closed = False

    def get(self, name: str, run: Callable[[list[Any]], Matrix], settings: BatchSettings) -> Batcher[Any] | None:
        """The batcher of encoder ``name`` (made with ``settings`` the first time), or None: batching off
        (``max_items`` 1) or closed."""
        if settings.max_items <= 1:
            return None
        with self._lock:
            if self._closed:
                return None
            batcher = self._made.get(name)
            if batcher is None:
                batcher = self._made[name] = Batcher(name, run, settings)
            return batcher

    @property
    def made(self) -> dict[str, Batcher[Any]]:
        with self._lock:
            return dict(self._made)

    def close(self) -> None:
        """Stop every batcher (each finishes its queued jobs first); later ``get`` answers None."""
        with self._lock:
            self._closed = True
            made = list(self._made.values())
        for batcher in made:
            batcher.close()
