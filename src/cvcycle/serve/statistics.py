"""Per model version counters: Triton's statistics extension and its Prometheus metrics, from one source.

Every count and duration lives once, in a ``VersionStatistics``; the statistics endpoints render it
as Triton's ``model_stats`` JSON (and gRPC ``ModelStatisticsResponse``), and ``TritonMetrics``
renders it as Triton's ``nv_inference_*`` metrics at scrape time. Counters survive reloads of a
version, as Triton's do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector


@dataclass
class Duration:
    """How many times something happened and how long it took in total."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchDurations:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ExecutionTimes:
    """What one execution of a batch cost, in nanoseconds, with the requests it served."""

    batch_size: int
    queue_ns: list[int]  # one per request in the batch
    compute_input_ns: int
    compute_infer_ns: int
    compute_output_ns: int


class VersionStatistics:
    """The counters of one model version; the scheduler and the request handlers add to them."""

    def __init__(self, model: str, version: int) -> None:
        self.model = model
        self.version = version
        self._lock = threading.Lock()
        self.success = Duration()
        self.fail = Duration()
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.inference_count = 0  # inferences, counting each batch element
        self.execution_count = 0  # model executions (one per formed batch)
        self.last_inference_ms = 0
        self.pending = 0  # requests queued or executing now
        self.batches: dict[int, BatchDurations] = {}

    def record_request(self, ok: bool, duration_ns: int) -> None:
        with self._lock:
            (self.success if ok else self.fail).add(duration_ns)
            self.last_inference_ms = int(time.time() * 1000)

    def record_execution(self, times: ExecutionTimes) -> None:
        requests = len(times.queue_ns)
        with self._lock:
            self.queue.add(sum(times.queue_ns), requests)
            # Per request, as Triton counts them: each request of a batch shares the batch's cost.
            self.compute_input.add(times.compute_input_ns * requests, requests)
            self.compute_infer.add(times.compute_infer_ns * requests, requests)
            self.compute_output.add(times.compute_output_ns * requests, requests)
            self.inference_count += times.batch_size
            self.execution_count += 1
            batch = self.batches.setdefault(times.batch_size, BatchDurations())
            batch.compute_input.add(times.compute_input_ns)
            batch.compute_infer.add(times.compute_infer_ns)
            batch.compute_output.add(times.compute_output_ns)

    def change_pending(self, delta: int) -> None:
        with self._lock:
            self.pending += delta

    def to_json(self) -> dict[str, Any]:
        """Triton's ``$model_stat`` object."""
        with self._lock:
            return {
                "name": self.model,
                "version": str(self.version),
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.to_json(),
                    "fail": self.fail.to_json(),
                    "queue": self.queue.to_json(),
                    "compute_input": self.compute_input.to_json(),
                    "compute_infer": self.compute_infer.to_json(),
                    "compute_output": self.compute_output.to_json(),
                    "cache_hit": Duration().to_json(),
                    "cache_miss": Duration().to_json(),
                },
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": durations.compute_input.to_json(),
                        "compute_infer": durations.compute_infer.to_json(),
                        "compute_output": durations.compute_output.to_json(),
                    }
                    for size, durations in sorted(self.batches.items())
                ],
            }


class StatisticsBook:
    """Every version's statistics, created on first use and kept across unloads and reloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, int], VersionStatistics] = {}

    def of(self, model: str, version: int) -> VersionStatistics:
        key = (model, version)
        stats = self._versions.get(key)
        if stats is None:
            with self._lock:
                stats = self._versions.setdefault(key, VersionStatistics(model, version))
        return stats

    def all(self) -> list[VersionStatistics]:
        with self._lock:
            return [self._versions[key] for key in sorted(self._versions)]


#: Triton's metric name -> (help, how to read it off a VersionStatistics).
_COUNTERS: dict[str, tuple[str, Any]] = {
    "nv_inference_request_success": (
        "Number of successful inference requests, all batch sizes",
        lambda s: s.success.count,
    ),
    "nv_inference_request_failure": (
        "Number of failed inference requests, all batch sizes",
        lambda s: s.fail.count,
    ),
    "nv_inference_count": ("Number of inferences performed (batch elements)", lambda s: s.inference_count),
    "nv_inference_exec_count": ("Number of model executions performed", lambda s: s.execution_count),
    "nv_inference_request_duration_us": (
        "Cumulative inference request duration in microseconds",
        lambda s: (s.success.ns + s.fail.ns) // 1000,
    ),
    "nv_inference_queue_duration_us": (
        "Cumulative inference queuing duration in microseconds",
        lambda s: s.queue.ns // 1000,
    ),
    "nv_inference_compute_input_duration_us": (
        "Cumulative compute input duration in microseconds",
        lambda s: s.compute_input.ns // 1000,
    ),
    "nv_inference_compute_infer_duration_us": (
        "Cumulative compute inference duration in microseconds",
        lambda s: s.compute_infer.ns // 1000,
    ),
    "nv_inference_compute_output_duration_us": (
        "Cumulative inference compute output duration in microseconds",
        lambda s: s.compute_output.ns // 1000,
    ),
}


class TritonMetrics(Collector):
    """Prometheus metrics with Triton's names and ``model`` / ``version`` labels, read at scrape time.

    The counters are exposed untyped: prometheus-client would append ``_total`` to a counter's name,
    and Triton's dashboards and alerts use the names without it.
    """

    def __init__(self, book: StatisticsBook) -> None:
        self.book = book

    def collect(self) -> Iterator[Metric]:
        versions = self.book.all()
        for name, (documentation, read) in _COUNTERS.items():
            metric = Metric(name, documentation, "unknown")
            for stats in versions:
                metric.add_sample(name, {"model": stats.model, "version": str(stats.version)}, read(stats))
            yield metric
        pending = Metric(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model",
            "gauge",
        )
        for stats in versions:
            pending.add_sample(
                "nv_inference_pending_request_count",
                {"model": stats.model, "version": str(stats.version)},
                stats.pending,
            )
        yield pending
