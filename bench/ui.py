"""The web UI measured in a real browser (headless Debian Chromium through Playwright).

One function per figure; each takes the running ``UiBench`` (a filled home served by uvicorn on a
free port, and a browser) and returns its figures as a dict. Run from the repository root::

    .venv/bin/python bench/ui.py                      # every figure
    .venv/bin/python bench/ui.py next-frame scrub     # some of them

Annotation figures:

* ``next-frame``: an annotator steps through a 1920x1080 H.264 video (GOP 50, no B-frames, like
  a camera) with the right-arrow key at 10 frames a second; the figure is the time from the key
  event to the frame painted on the canvas, with the tool's prefetch of the frames ahead.
  Goal p95 <= 50 ms. ``next-frame-held``: the same at 25 steps a second (a held key).
* ``box-save``: an annotator moves a box and saves, 100 times; the figure is the round trip of
  the save (request, compare-and-set on the revision, answer) seen by the page, and the same with
  the tool's panel redrawn after it. Goal p95 <= 30 ms.
* ``scrub``: the timeline of a 100,000-frame video (160x90 H.264, GOP 25, made here in about half
  a minute) is dragged across its whole length with the mouse for 5 seconds, so nearly every
  frame asked for needs a seek; figures: the time of a frame request (fetch and decode of the
  JPEG) and the longest stall, the longest time the shown frame lagged the pointer.
  Goal p95 <= 100 ms and no stall over 250 ms. While the drag moves, the tool asks for the
  keyframe at or before the pointer's frame (``?near=keyframe``: one decode instead of up to a
  GOP) and the exact frame when it stops. ``scrub-1080p``: the same on a minute of 1920x1080
  video with a 2-second GOP.

The browser tests never assert on time; these figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

from cvcycle.api import create_app
from cvcycle.data.ingest import ingest_file
from cvcycle.db import Database, open_database
from cvcycle.demo.sample_home import SampleHome, fill_sample_home
from cvcycle.home import init_home
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store

sys.path.insert(0, str(Path(__file__).parent))
from ui_feed import figure_feed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class UiBench:
    """A filled home served on a free port, and a headless browser."""

    url: str
    settings: Settings
    db: Database
    store: BlobStore
    sample: SampleHome
    browser: Any
    workdir: Path
    made: dict[str, Any] = field(default_factory=dict)  # media made once and shared by figures

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=60, **kwargs)

    def page(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        return page


def wait_until(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Poll a JavaScript expression until it is true.

    The app's Content-Security-Policy forbids eval, which ``page.wait_for_function`` relies on;
    ``page.evaluate`` goes through the DevTools protocol and is not affected.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout:g} s: {expression}")
        time.sleep(0.02)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(at(0.95), 1),
        "max_ms": round(ordered[-1], 1),
    }


# -- media made for the figures ---------------------------------------------------------------------


def write_h264(
    path: Path, frames: Iterator[np.ndarray], width: int, height: int, fps: int, gop: int, preset: str
) -> Path:
    """A camera-like H.264 stream: fixed keyframe interval, no B-frames."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": preset, "bframes": "0", "sc_threshold": "0", "keyint_min": str(gop)}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def camera_frames(width: int, height: int, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Textured static background with moving blocks and a little noise (cheap to make)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (height // 8, width // 8, 3), dtype=np.uint8)
    background = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
    noise = [rng.integers(0, 6, (height, width, 3), dtype=np.uint8) for _ in range(3)]
    for i in range(count):
        frame = background + noise[i % 3]
        for k in range(4):
            x = (i * (7 + 3 * k) + k * width // 4) % (width - 200)
            y = (k * height // 5 + 40) % (height - 200)
            frame[y : y + 180, x : x + 120] = (60 * k + 30, 200 - 40 * k, 120)
        yield frame


def long_frames(width: int, height: int, count: int) -> Iterator[np.ndarray]:
    """A sweeping bar and the frame number in the top rows: every frame differs, encodes fast."""
    base = np.full((height, width, 3), 40, np.uint8)
    for i in range(count):
        frame = base.copy()
        x = (i * 3) % width
        frame[:, x : x + 4] = 230
        frame[:6, :] = (i % 256, (i // 256) % 256, 128)
        yield frame


def video_task(bench: UiBench, key: str, make: Callable[[Path], Path], every: int) -> int:
    """Ingest a video made by ``make`` (sampling every ``every``-th frame) and open a video task on it."""
    if key not in bench.made:
        started = time.perf_counter()
        path = make(bench.workdir / f"{key}.mp4")
        result = ingest_file(bench.db, bench.store, "bench", path, source=key, every=every)
        response = bench.api("POST", "/api/tasks", json={"dataset": "bench", "media_id": result.media_id})
        response.raise_for_status()
        bench.made[key] = response.json()["id"]
        print(f"  made {key}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return int(bench.made[key])


def open_annotation(bench: UiBench, task_id: int, who: str) -> Any:
    page = bench.page()
    page.goto(f"{bench.url}/annotate/{task_id}?as={who}")
    wait_until(page, "window.cvcycleAnnotate && window.cvcycleAnnotate.shownFrame !== null")
    return page


# -- figures ----------------------------------------------------------------------------------------


def figure_next_frame(bench: UiBench, steps: int = 150, fps: float = 10.0) -> dict[str, Any]:
    """Key press to painted frame while stepping through a 1080p video at ``fps`` (prefetch on)."""
    return _next_frame(bench, steps, fps)


def figure_next_frame_held_key(bench: UiBench) -> dict[str, Any]:
    """The same with the key held down: the keyboard repeats it about 25 times a second."""
    return _next_frame(bench, 150, 25.0)


def _next_frame(bench: UiBench, steps: int, fps: float) -> dict[str, Any]:
    task = video_task(
        bench,
        "video-1080p",
        lambda p: write_h264(p, camera_frames(1920, 1080, 240), 1920, 1080, 25, gop=50, preset="veryfast"),
        every=50,
    )
    page = open_annotation(bench, task, "bench-stepper")
    latencies = page.evaluate(
        """async ([steps, period]) => {
          const s = window.cvcycleAnnotate;
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          const out = [];
          for (let i = 0; i < steps; i++) {
            const target = s.frame + 1;
            const t0 = performance.now();
            document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
            while (!s.paints.some((p) => p.frame === target && p.at >= t0)) await sleep(1);
            const painted = s.paints.find((p) => p.frame === target && p.at >= t0).at;
            out.push(painted - t0);
            const left = period - (performance.now() - t0);
            if (left > 0) await sleep(left);
          }
          return out;
        }""",
        [steps, 1000.0 / fps],
    )
    page.context.close()
    return {"video": "1920x1080 H.264, GOP 50", "step_rate_fps": fps, **percentiles(latencies)}


def figure_box_save(bench: UiBench, saves: int = 100) -> dict[str, Any]:
    """Round trip of a draft save after moving a box, as the page sees it."""
    frame_id = bench.sample.frame_ids[0]
    response = bench.api(
        "POST",
        "/api/tasks",
        json={"dataset": bench.sample.dataset, "frame_id": frame_id, "annotators": ["bench-saver"]},
    )
    response.raise_for_status()
    page = open_annotation(bench, response.json()["id"], "bench-saver")
    timings = page.evaluate(
        """async (saves) => {
          const s = window.cvcycleAnnotate;
          const box = { x: 10, y: 10, w: 40, h: 80 };
          if (!s.draft.boxes.length) s.draft.boxes.push({ id: "b", cls: "person", box, source: "human" });
          const out = [];
          for (let i = 0; i < saves; i++) {
            s.edit((d) => {
              d.boxes[0].box = { ...d.boxes[0].box, x: 10 + (i % 50) };
              d.boxes[0].source = "human";
            });
            const t0 = performance.now();
            const ok = await s.save({ quiet: true });
            if (!ok) throw new Error("save failed");
            // The request and its answer; the whole save with the panel redrawn goes alongside.
            out.push([s.lastSaveMs, performance.now() - t0]);
          }
          return out;
        }""",
        saves,
    )
    page.context.close()
    return {
        "saves": saves,
        "round_trip": percentiles([t[0] for t in timings]),
        "with_ui_update": percentiles([t[1] for t in timings]),
    }


def figure_scrub(bench: UiBench, frames: int = 100_000, seconds: float = 5.0) -> dict[str, Any]:
    """Drag the timeline of a 100,000-frame video end to end; frame request times and stalls."""
    task = video_task(
        bench,
        "video-100k",
        lambda p: write_h264(p, long_frames(160, 90, frames), 160, 90, 25, gop=25, preset="ultrafast"),
        every=1000,
    )
    return {"video": f"{frames} frames 160x90 H.264, GOP 25", **_scrub(bench, task, seconds)}


def figure_scrub_1080p(bench: UiBench, frames: int = 1_500, seconds: float = 5.0) -> dict[str, Any]:
    """The same on a minute of 1920x1080 video with a 2-second GOP, where a frame's exact decode
    can cost 50 frames: the scrub shows keyframes, the exact frame follows when the drag stops."""
    task = video_task(
        bench,
        "video-1080p-minute",
        lambda p: write_h264(p, camera_frames(1920, 1080, frames), 1920, 1080, 25, gop=50, preset="veryfast"),
        every=250,
    )
    return {"video": f"{frames} frames 1920x1080 H.264, GOP 50", **_scrub(bench, task, seconds)}


def _scrub(bench: UiBench, task: int, seconds: float) -> dict[str, Any]:
    page = open_annotation(bench, task, "bench-scrubber")
    page.evaluate("window.cvcycleAnnotate.frames.timings.length = 0")
    box = page.locator(".ann-timeline-canvas").bounding_box()
    y = box["y"] + 8
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    started = page.evaluate("performance.now()")
    moves = int(seconds * 60)
    begin = time.perf_counter()
    for i in range(1, moves + 1):
        # Back and forth over the whole timeline, so requests keep landing on new GOPs; the drag
        # ends part-way (at 31%), on a frame that is neither stored nor a keyframe.
        phase = (i / moves) * 2.3137
        fraction = phase % 2 if phase % 2 <= 1 else 2 - phase % 2
        page.mouse.move(box["x"] + 2 + fraction * (box["width"] - 4), y)
        lag = begin + i / 60 - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    ended = page.evaluate("performance.now()")
    page.mouse.up()
    wait_until(page, "window.cvcycleAnnotate.shownFrame === window.cvcycleAnnotate.frame")
    result = page.evaluate(
        """([t0, t1]) => {
          const s = window.cvcycleAnnotate;
          const paints = s.paints.filter((p) => p.at >= t0).map((p) => p.at);
          const edges = [t0, ...paints, Math.max(t1, paints[paints.length - 1] || t1)];
          let stall = 0;
          for (let i = 1; i < edges.length; i++) stall = Math.max(stall, edges[i] - edges[i - 1]);
          const exact = s.paints.find((p) => p.frame === s.frame && p.at >= t1);
          const settle = exact ? exact.at - t1 : 0;
          return { timings: s.frames.timings.slice(), paints: paints.length, stall, settle };
        }""",
        [started, ended],
    )
    page.context.close()
    return {
        "scrub_seconds": seconds,
        "exact_frame_after_release_ms": round(result["settle"], 1),
        "frames_painted": result["paints"],
        "frame_request": percentiles(result["timings"]),
        "longest_stall_ms": round(result["stall"], 1),
    }


FIGURES: dict[str, Callable[[UiBench], dict[str, Any]]] = {
    "feed": figure_feed,  # bench/ui_feed.py: the operator feed with 10,000 events
    "next-frame": figure_next_frame,
    "next-frame-held": figure_next_frame_held_key,
    "box-save": figure_box_save,
    "scrub": figure_scrub,
    "scrub-1080p": figure_scrub_1080p,
}


# -- running ----------------------------------------------------------------------------------------


class _Server:
    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the app did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", help=f"figures to measure: {', '.join(FIGURES)} (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    names = args.figures or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="cvcycle-ui-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "home", spot_check_share=0.0)
        init_home(settings)
        db, store = open_database(settings), open_store(settings)
        sample = fill_sample_home(db, store)
        results: dict[str, Any] = {}
        with _Server(create_app(settings, db=db, store=store)) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            bench = UiBench(url, settings, db, store, sample, browser, Path(tmp))
            for name in names:
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                results[name] = FIGURES[name](bench)
                print(f"{name}: {json.dumps(results[name])}", flush=True)
            browser.close()
        db.dispose()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
