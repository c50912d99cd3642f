"""Dynamic batching and model instances: which requests share a run, and that each gets its own rows back.

The scheduler is driven with a runner that holds its first run until the test lets it go, so that
the queue fills in a known state: no timing decides what the tests see.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton

from cvcycle.registry.triton import DynamicBatching
from cvcycle.serve.model_config import BatchingPolicy
from cvcycle.serve.repository import describe_run_error
from cvcycle.serve.scheduler import Scheduler, VersionRetired
from cvcycle.serve.statistics import VersionStatistics


class HeldRunner:
    """Doubles its input; its first run waits for ``release``; records each run's batch size."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.started.is_set():
            self.started.set()
            self.release.wait()
        self.batches.append(len(feeds["x"]))
        return {"y": feeds["x"] * 2}


def scheduler(
    runners: list[Any], batching: BatchingPolicy | None, max_batch_size: int = 8, inline_below_ns: int = 0
) -> Scheduler:
    return Scheduler(
        "m/1",
        runners,
        max_batch_size=max_batch_size,
        batching=batching,
        statistics=VersionStatistics("m", 1),
        run_error=describe_run_error,
        inline_below_ns=inline_below_ns,
    )


def rows(value: float, n: int = 1, width: int = 2) -> np.ndarray:
    return np.full((n, width), value, np.float32)


def fill_while_held(s: Scheduler, runner: HeldRunner, feeds: list[np.ndarray]) -> list[Future[Any]]:
    """One request occupies the runner; ``feeds`` queue behind it; then the runner goes on."""
    first = s.submit({"x": rows(-1)}, 1)
    runner.started.wait()
    futures = [s.submit({"x": x}, len(x)) for x in feeds]
    runner.release.set()
    first.result()
    return futures


def test_queued_requests_run_as_one_batch_and_get_their_own_rows() -> None:
    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy())
    futures = fill_while_held(s, runner, [rows(1), rows(2, 3), rows(3, 2)])
    results = [f.result()["y"] for f in futures]
    assert runner.batches == [1, 6]
    for result, expected in zip(results, [rows(2), rows(4, 3), rows(6, 2)], strict=True):
        np.testing.assert_array_equal(result, expected)
    stats = s.statistics.to_json()
    assert stats["inference_count"] == 7 and stats["execution_count"] == 2
    assert [b["batch_size"] for b in stats["batch_stats"]] == [1, 6]
    s.retire(wait=True)


def test_batches_stop_at_the_preferred_size_and_at_max_batch_size() -> None:
    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy(preferred_batch_size=(2, 4)), max_batch_size=8)
    futures = fill_while_held(s, runner, [rows(i) for i in range(6)])
    for f in futures:
        f.result()
    assert runner.batches == [1, 4, 2]
    s.retire(wait=True)

    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy(), max_batch_size=4)
    futures = fill_while_held(s, runner, [rows(1, 3), rows(2, 3), rows(3, 1)])
    for f in futures:
        f.result()
    assert runner.batches == [1, 4, 3]  # 3 + 1 fill the first batch; the second 3 waits for the next
    s.retire(wait=True)


def test_requests_of_other_shapes_are_not_merged() -> None:
    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy())
    futures = fill_while_held(s, runner, [rows(1, width=2), rows(2, width=3), rows(3, width=2)])
    results = [f.result()["y"] for f in futures]
    assert runner.batches == [1, 2, 1]
    np.testing.assert_array_equal(results[1], rows(4, width=3))


def test_without_dynamic_batching_each_request_runs_alone() -> None:
    runner = HeldRunner()
    s = scheduler([runner], None)
    for f in fill_while_held(s, runner, [rows(1), rows(2), rows(3)]):
        f.result()
    assert runner.batches == [1, 1, 1, 1]


def test_cheap_runs_execute_on_the_calling_thread_when_idle() -> None:
    threads: list[str] = []

    def runner(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        threads.append(threading.current_thread().name)
        return {"y": feeds["x"]}

    s = scheduler([runner], BatchingPolicy(), inline_below_ns=10**12)  # every run counts as cheap
    s.submit({"x": rows(1)}, 1).result()  # no average yet: a worker runs it
    future = s.submit({"x": rows(2)}, 1)
    assert future.done() and threads == ["m/1#0", threading.current_thread().name]
    np.testing.assert_array_equal(future.result()["y"], rows(2))
    assert s.statistics.to_json()["execution_count"] == 2
    s.retire(wait=True)


def test_instances_run_at_the_same_time() -> None:
    both_running = threading.Barrier(2)

    def runner(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        both_running.wait()  # passes only when a second instance runs alongside
        return {"y": feeds["x"]}

    s = scheduler([runner, runner], None)
    futures = [s.submit({"x": rows(i)}, 1) for i in range(2)]
    assert [float(f.result()["y"][0, 0]) for f in futures] == [0.0, 1.0]


def test_a_retired_scheduler_finishes_what_it_holds_and_refuses_the_rest() -> None:
    runner = HeldRunner()
    s = scheduler([runner], None)
    first = s.submit({"x": rows(1)}, 1)
    runner.started.wait()
    queued = s.submit({"x": rows(2)}, 1)
    s.retire()
    with pytest.raises(VersionRetired):
        s.submit({"x": rows(3)}, 1)
    runner.release.set()
    np.testing.assert_array_equal(first.result()["y"], rows(2))
    np.testing.assert_array_equal(queued.result()["y"], rows(4))
    s.retire(wait=True)


def test_a_runtime_failure_reaches_every_request_of_the_batch() -> None:
    def failing(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("out of memory")

    s = scheduler([failing], BatchingPolicy())
    future = s.submit({"x": rows(1)}, 1)
    with pytest.raises(Exception, match="the model failed to run: out of memory"):
        future.result()
    assert s.statistics.to_json()["execution_count"] == 0


def test_a_request_cancelled_while_queued_is_dropped_and_the_instance_goes_on() -> None:
    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy())
    first = s.submit({"x": rows(-1)}, 1)
    runner.started.wait()
    cancelled, kept = s.submit({"x": rows(1)}, 1), s.submit({"x": rows(2)}, 1)
    assert cancelled.cancel()  # its client went away while it waited
    runner.release.set()
    first.result()
    np.testing.assert_array_equal(kept.result(timeout=10)["y"], rows(4))
    np.testing.assert_array_equal(s.submit({"x": rows(3)}, 1).result(timeout=10)["y"], rows(6))
    assert runner.batches == [1, 1, 1]  # the cancelled request never ran
    assert s.statistics.pending == 0
    s.retire(wait=True)


def test_requests_from_a_coroutine_are_settled_on_its_loop_once_per_batch() -> None:
    runner = HeldRunner()
    s = scheduler([runner], BatchingPolicy())
    loop = asyncio.new_event_loop()
    wake_ups = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> Any:
        wake_ups.append(threading.current_thread().name)
        return call_soon_threadsafe(*args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

    async def clients() -> list[Any]:
        first = s.submit_async({"x": rows(-1)}, 1)
        await asyncio.to_thread(runner.started.wait)
        wake_ups.clear()  # to_thread's own
        queued = [s.submit_async({"x": rows(i)}, 1) for i in range(4)]
        queued[1].cancel()
        runner.release.set()
        await first
        return await asyncio.gather(*queued, return_exceptions=True)

    try:
        results = loop.run_until_complete(clients())
    finally:
        loop.close()
    assert isinstance(results[1], asyncio.CancelledError)
    for i in (0, 2, 3):
        np.testing.assert_array_equal(results[i]["y"], rows(2 * i))
    assert runner.batches == [1, 3]
    assert wake_ups == ["m/1#0", "m/1#0"]  # one per batch: the first request's, then the three's
    s.retire(wait=True)


def test_concurrent_clients_are_batched_by_the_server(
    serve: Any, publish: Any, affine: Callable[[float, float], bytes]
) -> None:
    publish("affine", 1, affine(2.0, 0.0), dynamic_batching=DynamicBatching((8,), 20_000), instance_count=2)
    server = serve()
    assert server.repository.models["affine"].config.instance_count == 2
    clients = [triton.InferenceServerClient(url=server.grpc_url) for _ in range(16)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        tensor = triton.InferInput("x", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.full((1, 4), i, np.float32))
        results[i] = clients[i].infer("affine", [tensor]).as_numpy("y")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(16):
        np.testing.assert_array_equal(results[i], np.full((1, 4), 2 * i, np.float32))
    stats = clients[0].get_inference_statistics("affine", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) == 16
    assert int(stats["inference_stats"]["success"]["count"]) == 16
    assert sum(int(b["compute_infer"]["count"]) for b in stats["batch_stats"]) == int(
        stats["execution_count"]
    )
