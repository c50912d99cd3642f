"""Serving throughput: ``cvcycle serve`` over HTTP (binary tensors) and gRPC against in-process ONNX Runtime.

Two models: the built-in detector at its default config, randomly initialised and exported through
its adapter (throughput does not depend on the weights), and a tiny model (x * 2 + 1 on 4 floats).

The ceiling is in-process ONNX Runtime on the same inputs, measured in every layout of the CPUs:
S sessions called side by side from S Python threads with T intra-op threads each, S x T = CPUs
(1x2 and 2x1 on two CPUs), at every batch size, with and without intra-op spinning, before and
after the server runs; the best run is the ceiling, and the report says which layout and batch.

Each model is published into a temporary repository without and with ``dynamic_batching``, with
one instance at Triton's defaults, and again tuned as the best layout of several sessions runs in
process: as many instances as it has sessions (the server gives each instance CPUs / instances
threads, that layout's T) and its best batch size as ``preferred_batch_size``; all served by a
``python -m cvcycle.serve`` subprocess. Asynchronous official clients (``tritonclient.http.aio``,
``tritonclient.grpc.aio``) keep 1, 8 or 32 batch-1 requests in flight for a fixed time each. Every
throughput is printed with its ratio to the ceiling. For context the report gives the in-process
batching bound of each layout (its best throughput at batch <= 8 over batch 1) beside the server's
batching gain at concurrency 8, the CPU per request of the clients and of the server in core-ms at
concurrency 32, the bound the CPUs put on any server while its clients share them (CPUs / (inference
+ client core-ms)), and how many cores other processes took meanwhile, with a warning when they
took enough to make the ratios unreliable. Each server point is the best of two rounds, the
variants measured back to back, and the in-process batch sizes take turns in short slices, since
other jobs may share the machine. All ratios come from one run.

    .venv/bin/python bench/serving.py                  # 1.5 s per point and round, 2 rounds
    .venv/bin/python bench/serving.py --seconds 1 --models tiny
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http.aio as http_aio
from onnx import TensorProto, helper

from cvcycle.registry.publish import write_repository_version
from cvcycle.registry.triton import DynamicBatching, io_from_onnx, model_config

CONCURRENCY = (1, 8, 32)
ROUNDS = 2
MAX_BATCH = 32
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
PASSES = 3  # in-process slices per batch size, taking turns


@dataclass(frozen=True)
class BenchModel:
    name: str
    onnx_bytes: bytes
    input_name: str
    sample: np.ndarray  # one request: batch 1


def tiny_model() -> BenchModel:
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["scaled"]),
            helper.make_node("Add", ["scaled", "one"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return BenchModel("tiny", model.SerializeToString(), "x", np.arange(4, dtype=np.float32)[None])


def detector_model() -> BenchModel:
    """The built-in detector, exported in a subprocess so that torch's threads stay out of this one."""
    with tempfile.TemporaryDirectory(prefix="cvcycle-bench-detector-") as tmp:
        path = Path(tmp) / "detector.onnx"
        subprocess.run([sys.executable, __file__, "--export-detector", str(path)], check=True)
        data = path.read_bytes()
    shape = io_from_onnx(data).inputs[0].shape
    sample = np.random.default_rng(0).random((1, *shape[1:]), dtype=np.float32)
    return BenchModel("detector", data, "images", sample)


def export_detector(path: Path) -> None:
    """The built-in detector at its default training config, exported as cvcycle exports it."""
    import torch

    from cvcycle.export.onnx import export_onnx
    from cvcycle.models.adapter import create_adapter
    from cvcycle.train.config import TrainConfig

    torch.manual_seed(0)
    config = TrainConfig()
    adapter = create_adapter(config.adapter)
    module = adapter.build(config, ["person", "fallen_person"])
    inputs = adapter.export_inputs(module, config)
    path.write_bytes(
        export_onnx(module, inputs.args, inputs.input_names, inputs.output_names, inputs.dynamic_axes)
    )


@dataclass(frozen=True)
class Layout:
    """How in-process ONNX Runtime uses the CPUs: ``sessions`` run side by side, each on ``threads``."""

    sessions: int
    threads: int

    def __str__(self) -> str:
        return f"{self.sessions}x{self.threads}"


def layouts(cpus: int) -> list[Layout]:
    """Every way to split the CPUs into equal sessions: 1 x cpus, ..., cpus x 1."""
    return [Layout(n, cpus // n) for n in range(1, cpus + 1) if cpus % n == 0]


def publish(
    repo: Path, model: BenchModel, layout: Layout | None, preferred: int = 1
) -> list[tuple[str, bool, Layout]]:
    """The model without and with dynamic batching, one instance, at Triton's defaults; and both
    again tuned as ``layout`` runs best in process: its sessions as instances (the server gives each
    the CPUs / instances as threads, the layout's) and its best batch size as the preferred one.
    Returns (name, batched, layout) per published model."""
    io = io_from_onnx(model.onnx_bytes)
    single = Layout(1, os.cpu_count() or 1)
    # Triton's defaults: no queue delay, batches of whatever is waiting, up to max_batch_size.
    variants = [(single, "", DynamicBatching())]
    if layout is not None:
        tuned = DynamicBatching(preferred_batch_size=(preferred,)) if preferred > 1 else DynamicBatching()
        variants.append((layout, f"_{layout}", tuned))
    published = []
    for served, suffix, batching in variants:
        for batched in (False, True):
            name = f"{model.name}{'_batched' if batched else ''}{suffix}"
            text = model_config(
                name,
                max_batch_size=MAX_BATCH,
                inputs=io.inputs,
                outputs=io.outputs,
                dynamic_batching=batching if batched else None,
                instance_count=served.sessions,
            )
            write_repository_version(repo, name, 1, model.onnx_bytes, text)
            published.append((name, batched, served))
    return published


# -- in-process ONNX Runtime ------------------------------------------------------------------------


@dataclass
class Run:
    throughput: float  # inferences per second, all sessions together
    core_ms: float  # process CPU per inference, in milliseconds
    p50: float  # seconds per call of one session
    other_cores: float = 0.0  # cores the machine's other processes used meanwhile


def call_until(
    session: Any, feeds: dict[str, np.ndarray], start: threading.Barrier, seconds: float, out: list[float]
) -> None:
    """Run ``session`` on ``feeds`` for ``seconds`` after ``start``, each call's latency into ``out``."""
    start.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        begun = time.perf_counter()
        session.run(None, feeds)
        out.append(time.perf_counter() - begun)


def run_sessions(model: BenchModel, layout: Layout, spinning: str, seconds: float) -> dict[int, Run]:
    """``layout.sessions`` sessions called at once from as many Python threads, at each batch size.

    The batch sizes take turns in PASSES short slices each, so that a load that comes and goes on
    the machine weighs on them alike and the batching bound compares like with like.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = layout.threads
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    sessions = [
        ort.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
        for _ in range(layout.sessions)
    ]
    feeds = {batch: {model.input_name: np.repeat(model.sample, batch, axis=0)} for batch in BATCH_SIZES}
    for batch_feeds in feeds.values():
        for session in sessions:
            session.run(None, batch_feeds)
    latencies: dict[int, list[list[float]]] = {batch: [[] for _ in sessions] for batch in BATCH_SIZES}
    totals = {batch: [0.0, 0.0] for batch in BATCH_SIZES}  # wall, CPU
    # Other processes' load over the whole run: /proc counts in ticks, too coarse for one slice.
    with OtherLoad() as load:
        for _ in range(PASSES):
            for batch in BATCH_SIZES:
                start = threading.Barrier(len(sessions) + 1)
                slice_seconds = seconds / 4 / PASSES
                threads = [
                    threading.Thread(
                        target=call_until, args=(session, feeds[batch], start, slice_seconds, out)
                    )
                    for session, out in zip(sessions, latencies[batch], strict=True)
                ]
                for thread in threads:
                    thread.start()
                start.wait()
                cpu, wall = time.process_time(), time.perf_counter()
                for thread in threads:
                    thread.join()
                totals[batch][0] += time.perf_counter() - wall
                totals[batch][1] += time.process_time() - cpu
    runs = {}
    for batch, (wall, cpu) in totals.items():
        inferences = batch * sum(len(calls) for calls in latencies[batch])
        p50 = float(np.median(latencies[batch][0]))
        runs[batch] = Run(inferences / wall, 1e3 * cpu / inferences, p50, load.cores)
    return runs


def in_process(model: BenchModel, seconds: float) -> dict[Layout, dict[int, Run]]:
    """Every layout at every batch size, its best run of intra-op spinning on and off.

    ONNX Runtime's intra-op threads spin by default; the server turns spinning off (it needs the
    cores for the protocol). With one thread per session there is no pool to spin.
    """
    results: dict[Layout, dict[int, Run]] = {}
    for layout in layouts(os.cpu_count() or 1):
        best: dict[int, Run] = {}
        for spinning in ("1", "0") if layout.threads > 1 else ("0",):
            for batch, run in run_sessions(model, layout, spinning, seconds).items():
                if batch not in best or run.throughput > best[batch].throughput:
                    best[batch] = run
        results[layout] = best
    return results


def merge(a: dict[Layout, dict[int, Run]], b: dict[Layout, dict[int, Run]]) -> dict[Layout, dict[int, Run]]:
    """Two measurements as one, per layout and batch size: the run with the better throughput, with
    its own CPU per inference (a mean over both runs beside the better one's throughput claimed more
    CPU than two CPUs have, and the server then seemed to spend less than inference), the better p50
    and the higher load of other processes."""
    merged: dict[Layout, dict[int, Run]] = {}
    for layout, runs in a.items():
        merged[layout] = {}
        for batch, run in runs.items():
            other = b[layout][batch]
            best = run if run.throughput >= other.throughput else other
            merged[layout][batch] = Run(
                best.throughput,
                best.core_ms,
                min(run.p50, other.p50),
                max(run.other_cores, other.other_cores),
            )
    return merged


def best_of(results: dict[Layout, dict[int, Run]], most: int = MAX_BATCH) -> tuple[Layout, int]:
    """The layout and batch size (at most ``most``) with the highest throughput."""
    return max(
        ((layout, batch) for layout, runs in results.items() for batch in runs if batch <= most),
        key=lambda pair: results[pair[0]][pair[1]].throughput,
    )


# -- through the server -----------------------------------------------------------------------------


@dataclass
class Point:
    throughput: float  # inferences per second
    p50: float  # seconds
    client_cores: float = 0.0  # CPU the clients (this process) used, in cores
    server_cores: float = 0.0  # CPU the server process used, in cores
    other_cores: float = 0.0  # CPU the machine's other processes used meanwhile, in cores


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every process of the machine has used so far (user, nice, system, irq), from /proc."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """How many cores the machine's other processes used while a part of the bench ran.

    Other jobs may share the machine; this says how much of it they took, so that a reader can tell
    a slow server from a busy machine. ``pids``: the bench's own processes besides this one.
    """

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        self.pids = pids
        self.cores = 0.0

    def _own(self) -> float:
        return time.process_time() + sum(process_cpu_seconds(pid) for pid in self.pids)

    def __enter__(self) -> OtherLoad:
        self._start = (time.perf_counter(), machine_cpu_seconds(), self._own())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, machine, own = self._start
        elapsed = time.perf_counter() - wall
        self.cores = max(0.0, (machine_cpu_seconds() - machine) - (self._own() - own)) / elapsed


async def load(
    make_call: Callable[[], Callable[[], Awaitable[Any]]], concurrency: int, seconds: float
) -> Point:
    calls = [make_call() for _ in range(concurrency)]
    for call in calls:
        await call()  # connect and warm up outside the measurement
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(call: Callable[[], Awaitable[Any]]) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(call) for call in calls))
    elapsed = time.perf_counter() - start
    return Point(len(latencies) / elapsed, float(np.median(latencies)))


async def measure_http(url: str, model: str, sample: BenchModel, concurrency: int, seconds: float) -> Point:
    client = http_aio.InferenceServerClient(url=url, conn_limit=concurrency)
    tensor = http_aio.InferInput(sample.input_name, list(sample.sample.shape), "FP32")
    tensor.set_data_from_numpy(sample.sample, binary_data=True)
    outputs = None  # every output, as binary

    def make_call() -> Callable[[], Awaitable[Any]]:
        return lambda: client.infer(model, [tensor], outputs=outputs)

    try:
        return await load(make_call, concurrency, seconds)
    finally:
        await client.close()


async def measure_grpc(url: str, model: str, sample: BenchModel, concurrency: int, seconds: float) -> Point:
    client = grpc_aio.InferenceServerClient(url=url)
    tensor = grpc_aio.InferInput(sample.input_name, list(sample.sample.shape), "FP32")
    tensor.set_data_from_numpy(sample.sample)

    def make_call() -> Callable[[], Awaitable[Any]]:
        return lambda: client.infer(model, [tensor])

    try:
        return await load(make_call, concurrency, seconds)
    finally:
        await client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m cvcycle.serve`` on free ports, stopped with SIGINT."""

    def __init__(self, repo: Path) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cvcycle.serve",
                "--repo",
                str(repo),
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
                "--metrics-port",
                str(self.metrics_port),
                "--poll-interval",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def wait_ready(self) -> None:
        client = http_aio.InferenceServerClient(url=f"127.0.0.1:{self.http_port}")
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited: {self.process.stderr.read() if self.process.stderr else ''}"
                    )
                try:
                    if await client.is_server_ready():
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                await asyncio.sleep(0.1)
            raise RuntimeError("the server did not become ready in 120 s")
        finally:
            await client.close()

    def stop(self) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


Published = list[tuple[str, bool, Layout]]  # (model name, batched, instances x threads)
Rows = dict[tuple[str, str], dict[int, Point]]  # (protocol, model name) -> concurrency -> point


async def measure_model(
    server: ServerProcess, model: BenchModel, published: Published, seconds: float
) -> Rows:
    """Every published variant at every concurrency over both protocols, best of ROUNDS rounds.

    Other jobs may share the machine: each point is measured in ROUNDS rounds, the variants back to
    back at each concurrency, and keeps its best round.
    """
    rows: Rows = {(protocol, name): {} for protocol in ("http", "grpc") for name, _, _ in published}
    for _ in range(ROUNDS):
        for protocol, measure, url in [
            ("http", measure_http, f"127.0.0.1:{server.http_port}"),
            ("grpc", measure_grpc, f"127.0.0.1:{server.grpc_port}"),
        ]:
            for concurrency in CONCURRENCY:
                for name, _, _ in published:
                    wall, client, served = (
                        time.perf_counter(),
                        time.process_time(),
                        process_cpu_seconds(server.process.pid),
                    )
                    with OtherLoad((server.process.pid,)) as load:
                        point = await measure(url, name, model, concurrency, seconds)
                    wall = time.perf_counter() - wall
                    point.client_cores = (time.process_time() - client) / wall
                    point.server_cores = (process_cpu_seconds(server.process.pid) - served) / wall
                    point.other_cores = load.cores
                    old = rows[(protocol, name)].get(concurrency, point)
                    best = point if point.throughput >= old.throughput else old
                    best.p50 = min(old.p50, point.p50)
                    rows[(protocol, name)][concurrency] = best
    return rows


def batching_bound(runs: dict[int, Run], most: int) -> float:
    """In-process gain of batching: the best throughput at batch <= ``most`` over that at batch 1."""
    return max(run.throughput for batch, run in runs.items() if batch <= most) / runs[1].throughput


def verdict(value: float, goal: float, applies: bool, busy: bool, higher: bool = True) -> str:
    """Whether a goal is met; ``busy``: other processes took CPUs meanwhile, so it is not to be trusted."""
    if not applies:
        return "(not this model's goal)"
    met = "met" if (value >= goal if higher else value <= goal) else "NOT met"
    return f"{met} (untrustworthy: the machine was busy)" if busy else met


#: Which goal is set on which model: the throughput goals on a real model (the detector), the added
#: latency on the tiny one, whose run costs next to nothing (its ceiling is arithmetic, not a model).
THROUGHPUT_GOALS = {"detector"}

#: Past this many cores taken by other processes during a measurement, the report warns.
BUSY_CORES = 0.2
LATENCY_GOALS = {"tiny"}


def report(
    model: BenchModel,
    results: dict[Layout, dict[int, Run]],
    published: Published,
    rows: Rows,
    preferred: int,
) -> None:
    """The tables, the CPU per request, the goals, and a warning when other processes took CPUs."""
    cpus = os.cpu_count() or 1
    single = Layout(1, cpus)
    top_layout, top_batch = best_of(results)
    inference = results[top_layout][top_batch]
    ceiling = inference.throughput
    print(f"\n== {model.name}: in-process ONNX Runtime, inferences/s by batch size")
    print("   layout SxT: S sessions called side by side from S Python threads, T intra-op threads each")
    for layout, runs in results.items():
        cells = "  ".join(f"b{b}: {run.throughput:,.0f}" for b, run in runs.items())
        print(f"   {layout!s:<5} {cells}   (batching bound b<=8 / b1: {batching_bound(runs, 8):.2f}x)")
    print(
        f"   ceiling {ceiling:,.0f}/s: layout {top_layout} at batch {top_batch}, "
        f"{inference.core_ms:.4f} core-ms per inference; "
        f"batch-1 p50 ({single}) {results[single][1].p50 * 1e3:.3f} ms"
    )

    print(
        "   cvcycle serve, batch-1 requests, inferences/s (ratio to the ceiling); "
        "instances SxT: instance_group count S, T intra-op threads each; pB: preferred_batch_size B"
    )
    print(
        f"   {'protocol':<8} {'batching':<9} {'instances':<10}"
        + "".join(f"{f'conc {c}':>20}" for c in CONCURRENCY)
    )
    variant = {name: (batched, layout) for name, batched, layout in published}
    for (protocol, name), points in rows.items():
        batched, layout = variant[name]
        cells = "".join(
            f"{f'{p.throughput:,.0f}/s ({p.throughput / ceiling:.2f})':>20}" for p in points.values()
        )
        note = "  <- the ceiling's layout" if layout == top_layout and layout != single else ""
        label = f"{layout} p{preferred}" if batched and layout != single and preferred > 1 else str(layout)
        print(f"   {protocol:<8} {'on' if batched else 'off':<9} {label:<10}{cells}{note}")

    print(
        f"   CPU per request at conc 32 with batching, in core-ms (inference alone {inference.core_ms:.4f}); "
        f"the CPUs' bound: the CPUs other processes left, over inference + clients"
    )
    best: dict[str, tuple[Point, Layout]] = {}
    for (protocol, name), points in rows.items():
        batched, layout = variant[name]
        if batched:
            top = points[32]
            client_ms, server_ms = (
                1e3 * top.client_cores / top.throughput,
                1e3 * top.server_cores / top.throughput,
            )
            # What a server that cost nothing beyond inference could serve, its clients on the same CPUs.
            free = max(cpus - top.other_cores, 0.1)
            bound = free * 1e3 / (inference.core_ms + client_ms)
            print(
                f"     {protocol} {layout}: clients {client_ms:.3f}, server {server_ms:.3f} "
                f"({server_ms - inference.core_ms:+.3f} beyond inference); the CPUs' bound "
                f"{bound:,.0f}/s on {free:.2f} CPUs ({bound / ceiling:.2f} of the ceiling), "
                f"served {top.throughput / bound:.2f} of it"
            )
            if protocol not in best or top.throughput > best[protocol][0].throughput:
                best[protocol] = (top, layout)

    throughput_goals = model.name in THROUGHPUT_GOALS
    busiest = max(
        [run.other_cores for runs in results.values() for run in runs.values()]
        + [point.other_cores for points in rows.values() for point in points.values()]
    )
    busy = busiest > BUSY_CORES
    print("   goals")
    for protocol, (top, layout) in best.items():
        ratio = top.throughput / ceiling
        print(
            f"     {protocol}: conc 32 batched / ceiling >= 0.9: {ratio:.2f} ({layout}) "
            + verdict(ratio, 0.9, throughput_goals, busy)
        )
    for protocol in ("http", "grpc"):
        gains = {}
        for layout in dict.fromkeys(layout for _, _, layout in published):
            off, on = (
                next(n for n, b, lay in published if lay == layout and b == want) for want in (False, True)
            )
            gains[layout] = rows[(protocol, on)][8].throughput / rows[(protocol, off)][8].throughput
        shown = ", ".join(
            f"{gain:.2f}x ({layout}; in-process bound {batching_bound(results[layout], 8):.2f}x)"
            for layout, gain in gains.items()
        )
        print(
            f"     {protocol}: batching gain at conc 8 >= 1.5x: {shown} "
            + verdict(max(gains.values()), 1.5, throughput_goals, busy)
        )
    unbatched = next(name for name, batched, layout in published if layout == single and not batched)
    for protocol in ("http", "grpc"):
        added = (rows[(protocol, unbatched)][1].p50 - results[single][1].p50) * 1e3
        print(
            f"     {protocol}: p50 added latency at conc 1 <= 1 ms: {added:.3f} ms "
            + verdict(added, 1.0, model.name in LATENCY_GOALS, busy, higher=False)
        )
    if busy:
        print(
            f"   WARNING: other processes took up to {busiest:.2f} of the {cpus} CPUs during these "
            "measurements: each figure depends on how much of the machine its moment left, the ratios "
            "and verdicts cannot be trusted; run again on an idle machine"
        )


@dataclass
class ModelBench:
    """Everything measured of one model: in-process before and after the server, the server's rows,
    and how many cores other processes took meanwhile."""

    model: BenchModel
    before: dict[Layout, dict[int, Run]]
    published: Published = field(default_factory=list)
    rows: Rows = field(default_factory=dict)
    other_cores: dict[str, float] = field(default_factory=dict)  # phase -> cores
    preferred: int = 1  # the preferred batch size of the tuned layout's batched variant


async def serve_and_measure(benches: list[ModelBench], seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="cvcycle-bench-serving-") as tmp:
        repo = Path(tmp)
        for bench in benches:
            # Besides one instance on every CPU, the best layout of several sessions, measured before,
            # with its best batch size as the preferred one.
            several = {layout: runs for layout, runs in bench.before.items() if layout.sessions > 1}
            if several:
                layout = best_of(several)[0]
                bench.preferred = best_of({layout: several[layout]})[1]
                bench.published = publish(repo, bench.model, layout, bench.preferred)
            else:
                bench.published = publish(repo, bench.model, None)
        server = ServerProcess(repo)
        try:
            await server.wait_ready()
            for bench in benches:
                with OtherLoad((server.process.pid,)) as load:
                    bench.rows = await measure_model(server, bench.model, bench.published, seconds)
                bench.other_cores["server"] = load.cores
        finally:
            server.stop()


def run_bench(models: list[BenchModel], seconds: float) -> None:
    """In-process ONNX Runtime, then the server, then in-process again; the report of each model."""
    benches = []
    for model in models:
        with OtherLoad() as load:
            benches.append(ModelBench(model, in_process(model, seconds)))
        benches[-1].other_cores["in-process before"] = load.cores
    asyncio.run(serve_and_measure(benches, seconds))
    # The machine is shared: measure in-process again afterwards and keep the better of the two.
    for bench in benches:
        with OtherLoad() as load:
            after = in_process(bench.model, seconds)
        bench.other_cores["in-process after"] = load.cores
        results = merge(bench.before, after)
        report(bench.model, results, bench.published, bench.rows, bench.preferred)
        print(
            "   other processes used, in cores: "
            + ", ".join(f"{cores:.2f} {phase}" for phase, cores in bench.other_cores.items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="Seconds per measured point and round.")
    parser.add_argument("--models", nargs="+", default=["detector", "tiny"], choices=["detector", "tiny"])
    parser.add_argument("--export-detector", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_detector:
        export_detector(args.export_detector)
        return
    print(
        f"serving bench on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
        "(other jobs share the machine)"
    )
    builders = {"detector": detector_model, "tiny": tiny_model}
    models = [builders[name]() for name in args.models]
    onnx.checker.check_model(onnx.load_from_string(models[-1].onnx_bytes))
    run_bench(models, args.seconds)


if __name__ == "__main__":
    main()
