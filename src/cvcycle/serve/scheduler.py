"""Running requests on a model version's instances, one at a time or dynamically batched.

Each version has one queue and one worker thread per model instance (``instance_group`` count),
each worker with its own session. Without ``dynamic_batching`` a worker runs one request at a
time. With it, a worker takes the oldest request and joins to it the queued requests whose tensors
differ only in the batch axis, up to ``max_batch_size``; it stops early once the batch reaches the
largest ``preferred_batch_size`` and waits for more at most ``max_queue_delay_microseconds`` after
the oldest request arrived. Outputs are split back per request along the batch axis.

Handing a request to a worker thread costs two thread wake-ups (there and back), which on a busy
CPU box is more than a small model takes to run. So when a version's runs take less than
``INLINE_BELOW_NS`` on average, nothing is queued and no worker is busy, the request runs at once
on the calling thread; sessions are safe to run from several threads.

Requests from a coroutine (``submit_async``) get their results on their event loop with one
wake-up of that loop per batch, not one per request. A request cancelled while it waits (its
client went away, its deadline passed) is dropped from the batch instead of being run.

A retired scheduler (its version was unloaded or replaced) refuses new requests with
``VersionRetired`` and finishes the ones it holds, so a swap drops nothing: the caller resolves the
version again and lands on the new one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from cvcycle.serve.model_config import BatchingPolicy
from cvcycle.serve.statistics import ExecutionTimes, VersionStatistics

log = logging.getLogger("cvcycle.serve")

#: A model's outputs by name.
Outputs = dict[str, np.ndarray]

#: Runs the model on feeds; returns every output by name. One per model instance.
Runner = Callable[[dict[str, np.ndarray]], Outputs]

#: Runs shorter than this on average are done on the calling thread when the version is idle.
INLINE_BELOW_NS = 100_000


class VersionRetired(Exception):
    """The version stopped taking requests (unloaded or replaced); resolve the version again."""


class ExecutionError(Exception):
    """The model refused or failed to run a batch; ``invalid_input`` when its inputs were at fault."""

    def __init__(self, message: str, invalid_input: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_input = invalid_input


#: An asyncio future and what to settle it with, on its loop.
Settled = tuple[asyncio.Future[Outputs], Outputs | ExecutionError]


@dataclass(eq=False)
class Job:
    feeds: dict[str, np.ndarray]
    batch_size: int  # along axis 0 when the model batches, else 1
    future: Future[Outputs] | asyncio.Future[Outputs]
    loop: asyncio.AbstractEventLoop | None = None  # the loop of an asyncio future, which only it may touch
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)

    def claim(self) -> bool:
        """Whether the request still wants its result (a concurrent future cannot be cancelled after)."""
        if self.loop is None:
            assert isinstance(self.future, Future)
            return self.future.set_running_or_notify_cancel()
        return not self.future.cancelled()  # a cancel after this is seen when the result is set

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...], str], ...]:
        """What must match for two requests to share a batch: names, non-batch dims, dtypes."""
        return tuple((name, array.shape[1:], array.dtype.str) for name, array in self.feeds.items())


class Scheduler:
    """The queue and workers of one loaded model version."""

    def __init__(
        self,
        label: str,
        runners: list[Runner],
        *,
        max_batch_size: int,
        batching: BatchingPolicy | None,
        statistics: VersionStatistics,
        run_error: Callable[[Exception], ExecutionError | None],
        inline_below_ns: int = INLINE_BELOW_NS,
    ) -> None:
        self.label = label
        self.max_batch_size = max_batch_size
        # Batching needs a batch axis; Triton ignores dynamic_batching when max_batch_size is 0.
        self.batching = batching if max_batch_size > 0 else None
        self.statistics = statistics
        self._run_error = run_error
        self._queue: deque[Job] = deque()
        self._ready = threading.Condition()
        self._retired = False
        self._busy = 0  # workers executing a batch now
        self._waiting = 0  # workers waiting for a request
        self._mean_run_ns: float | None = None  # moving average of the runs' compute time
        self._inline_runner = runners[0]
        self._inline_below_ns = inline_below_ns
        if self.batching is not None:
            fitting = [size for size in self.batching.preferred_batch_size if size <= max_batch_size]
            self._target = max(fitting, default=max_batch_size)
            self._delay_ns = self.batching.max_queue_delay_microseconds * 1000
        self._workers = [
            threading.Thread(target=self._work, args=(runner,), name=f"{label}#{i}", daemon=True)
            for i, runner in enumerate(runners)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: dict[str, np.ndarray], batch_size: int) -> Future[Outputs]:
        """Queue a request from any thread; the future gets the outputs by name or the ExecutionError."""
        future: Future[Outputs] = Future()
        self._submit(Job(feeds, batch_size, future))
        return future

    def submit_async(self, feeds: dict[str, np.ndarray], batch_size: int) -> asyncio.Future[Outputs]:
        """Queue a request from a coroutine; its future is settled on the running event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._submit(Job(feeds, batch_size, future, loop))
        return future

    def _submit(self, job: Job) -> None:
        with self._ready:
            if self._retired:
                raise VersionRetired(self.label)
            inline = (
                self._mean_run_ns is not None
                and self._mean_run_ns < self._inline_below_ns
                and not self._queue
                and self._busy == 0
            )
            if not inline:
                self._queue.append(job)
                if self._waiting:
                    self._ready.notify()
        self.statistics.change_pending(1)
        if inline:
            self._execute(self._inline_runner, [job], inline=True)

    def retire(self, wait: bool = False) -> None:
        """Take no more requests; the workers finish those queued, then stop."""
        with self._ready:
            self._retired = True
            self._ready.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    # -- the workers ----------------------------------------------------------------------------------

    def _work(self, runner: Runner) -> None:
        while True:
            jobs = self._next_batch()
            if not jobs:
                return
            try:
                self._execute(runner, jobs)
            finally:
                with self._ready:
                    self._busy -= 1

    def _next_batch(self) -> list[Job]:
        with self._ready:
            while not self._queue:
                if self._retired:
                    return []
                self._waiting += 1
                try:
                    self._ready.wait()
                finally:
                    self._waiting -= 1
            first = self._queue.popleft()
            self._busy += 1
            if self.batching is None:
                return [first]
            jobs = [first]
            size = first.batch_size
            signature = first.signature
            deadline = first.enqueued_ns + self._delay_ns
            while True:
                size = self._take_compatible(jobs, size, signature)
                if size >= self._target or self._retired:
                    break
                remaining = deadline - time.perf_counter_ns()
                if remaining <= 0:
                    break
                self._waiting += 1
                try:
                    self._ready.wait(remaining / 1e9)
                finally:
                    self._waiting -= 1
            if self._queue:
                self._ready.notify()  # another worker may take what this batch left
            return jobs

    def _take_compatible(self, jobs: list[Job], size: int, signature: object) -> int:
        kept: deque[Job] = deque()
        while self._queue and size < self._target:
            job = self._queue.popleft()
            if size + job.batch_size <= self.max_batch_size and job.signature == signature:
                jobs.append(job)
                size += job.batch_size
            else:
                kept.append(job)
        kept.extend(self._queue)
        self._queue = kept
        return size

    def _execute(self, runner: Runner, jobs: list[Job], inline: bool = False) -> None:
        claimed = [job for job in jobs if job.claim()]
        if len(claimed) < len(jobs):  # cancelled while queued: nobody waits for their results
            self.statistics.change_pending(len(claimed) - len(jobs))
            jobs = claimed
            if not jobs:
                return
        start = time.perf_counter_ns()
        queue_ns = [start - job.enqueued_ns for job in jobs]
        try:
            if len(jobs) == 1:
                feeds = jobs[0].feeds
            else:
                feeds = {name: np.concatenate([job.feeds[name] for job in jobs]) for name in jobs[0].feeds}
            inputs_done = time.perf_counter_ns()
            outputs = runner(feeds)
            infer_done = time.perf_counter_ns()
            results = self._split(outputs, jobs)
        except Exception as exc:  # noqa: BLE001 - whatever the runtime raises must reach the waiting requests
            error = self._run_error(exc) or ExecutionError(f"{self.label} failed to run: {exc}")
            if error.__cause__ is None:
                error.__cause__ = exc
            self.statistics.change_pending(-len(jobs))
            _deliver(jobs, [error] * len(jobs), inline)
            return
        done = time.perf_counter_ns()
        run_ns = infer_done - inputs_done
        mean = self._mean_run_ns
        self._mean_run_ns = run_ns if mean is None else 0.9 * mean + 0.1 * run_ns
        self.statistics.record_execution(
            ExecutionTimes(
                batch_size=sum(job.batch_size for job in jobs),
                queue_ns=queue_ns,
                compute_input_ns=inputs_done - start,
                compute_infer_ns=infer_done - inputs_done,
                compute_output_ns=done - infer_done,
            )
        )
        self.statistics.change_pending(-len(jobs))
        _deliver(jobs, results, inline)

    def _split(self, outputs: dict[str, np.ndarray], jobs: list[Job]) -> list[dict[str, np.ndarray]]:
        if len(jobs) == 1:
            return [outputs]
        total = sum(job.batch_size for job in jobs)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise ExecutionError(
                    f"{self.label}: output {name!r} has shape {list(array.shape)}, no batch axis of "
                    f"{total} to split between the {len(jobs)} batched requests; "
                    "remove dynamic_batching from its config.pbtxt"
                )
        results = []
        offset = 0
        for job in jobs:
            end = offset + job.batch_size
            results.append({name: array[offset:end] for name, array in outputs.items()})
            offset = end
        return results


def _deliver(jobs: list[Job], outcomes: Sequence[Outputs | ExecutionError], inline: bool) -> None:
    """Each job's outputs or error into its future: asyncio futures on their loop, one wake-up per loop.

    ``inline``: the jobs ran on the calling thread, which is their loop's when they came from it.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.loop is None:
            assert isinstance(job.future, Future)
            if isinstance(outcome, ExecutionError):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        else:
            assert isinstance(job.future, asyncio.Future)
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, settled in by_loop.items():
        if inline:
            _settle(settled)
            continue
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # the loop is closed: the server stopped and nobody waits any more
            log.debug("%d results for a closed event loop dropped", len(settled))


def _settle(settled: list[Settled]) -> None:
    """On the futures' loop: set each outcome, unless the request was cancelled meanwhile."""
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, ExecutionError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
