"""Frame-ingest throughput: ``iter_jpeg_frames`` against plain PyAV decoding of the same video.

Ingest keeps every frame and JPEG-encodes it (quality 90), so the ratio says how much of the
decoder's speed survives JPEG encoding. Run from the repository root::

    .venv/bin/python bench/ingest.py            # makes a 1280x720, 300-frame H.264 test clip
    .venv/bin/python bench/ingest.py clip.mp4   # or measures a video you have

``measure_ingest(path)`` does the measuring for any video and returns the figures as a dict.
The test clip imitates a fixed camera: a textured static scene, ten textured objects moving
across it, and light sensor noise, encoded with libx264 at CRF 23 by ``write_video``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from cvcycle.media import iter_jpeg_frames, write_video
from cvcycle.media.jpeg import encode_video_frame

WIDTH, HEIGHT, FRAMES, FPS = 1280, 720, 300, 30


def synthetic_frames(
    width: int = WIDTH, height: int = HEIGHT, count: int = FRAMES, seed: int = 0
) -> Iterator[np.ndarray]:
    """Camera-like RGB frames: textured background, moving textured objects, sensor noise."""
    rng = np.random.default_rng(seed)

    def texture(w: int, h: int, cells_x: int, cells_y: int, amplitude: float) -> np.ndarray:
        # Random colours on a coarse grid, smoothly upsampled: blotchy detail at one scale.
        cells = rng.integers(0, 256, (cells_y, cells_x, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(cells).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        return (smooth - 128.0) * amplitude

    background = 128.0 + texture(width, height, 32, 18, 0.6) + texture(width, height, 160, 90, 0.25)
    background += texture(width, height, 640, 360, 0.1)
    # A few precomputed noise fields, cycled: per-frame noise without per-frame RNG cost.
    noise = [rng.normal(0.0, 1.5, (height, width, 3)).astype(np.float32) for _ in range(4)]
    objects = []
    for _ in range(10):
        ow, oh = int(rng.integers(60, 240)), int(rng.integers(60, 240))
        tint = rng.integers(0, 256, 3).astype(np.float32)
        sprite = np.clip(tint + texture(ow, oh, 8, 8, 0.4), 0, 255)
        position = np.array([rng.uniform(0, width - ow), rng.uniform(0, height - oh)])
        velocity = np.array([rng.uniform(-6, 6), rng.uniform(-4, 4)])
        objects.append((sprite, position, velocity, np.array([width - ow, height - oh], dtype=np.float64)))
    for i in range(count):
        frame = background + noise[i % len(noise)]
        for sprite, position, velocity, limit in objects:
            # Move, bouncing off the edges (the arrays are updated in place, frame to frame).
            position += velocity
            outside = (position < 0) | (position > limit)
            velocity[outside] *= -1
            np.clip(position, 0, limit, out=position)
            x, y = int(position[0]), int(position[1])
            oh, ow = sprite.shape[:2]
            frame[y : y + oh, x : x + ow] = sprite
        yield np.clip(frame, 0, 255).astype(np.uint8)


def make_test_video(path: Path) -> Path:
    """Write the benchmark clip (1280x720, 300 frames, 30 fps, libx264 CRF 23) to ``path``."""
    write_video(synthetic_frames(), path, fps=FPS)
    return path


def _plain_decode(path: Path) -> tuple[int, float, float]:
    """Frames, wall seconds and CPU seconds (all threads) of the reference decode loop."""
    start, cpu = time.perf_counter(), time.process_time()
    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "AUTO"
        count = 0
        for _ in container.decode(video=0):
            count += 1
    return count, time.perf_counter() - start, time.process_time() - cpu


def _ingest(path: Path) -> tuple[int, float, float, int]:
    """Frames, wall seconds, CPU seconds and JPEG bytes of ingesting every frame."""
    start, cpu = time.perf_counter(), time.process_time()
    count = size = 0
    for frame in iter_jpeg_frames(path, every=1, quality=90):
        count += 1
        size += len(frame.jpeg)
    return count, time.perf_counter() - start, time.process_time() - cpu, size


def _jpeg_cpu(path: Path, sample: int = 60) -> float:
    """CPU seconds per frame of RGB conversion + JPEG encoding alone, on one thread."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == sample:
                break
    encode_video_frame(frames[0], 90)  # warm up the scratch file and swscale context
    start = time.thread_time()
    for frame in frames:
        encode_video_frame(frame, 90)
    return (time.thread_time() - start) / len(frames)


def measure_ingest(path: Path, repeats: int = 3) -> dict[str, Any]:
    """Best-of-``repeats`` frames per second of plain decoding and of ingest, and their ratio.

    Runs alternate between the two so that a slow spell on a shared machine hits both alike.
    CPU milliseconds per frame (summed over threads) are reported too: unlike frames per second
    they hardly change when other processes compete for the cores. ``ceiling_ratio`` is what a
    perfect pipeline could reach: all cores busy with nothing but decoding plus JPEG encoding.
    """
    path = Path(path)
    _plain_decode(path)  # warm the page cache and FFmpeg's one-time initialisation
    plain_fps = ingest_fps = 0.0
    plain_cpu = ingest_cpu = float("inf")
    frames = jpeg_bytes = 0
    for _ in range(repeats):
        frames, seconds, cpu = _plain_decode(path)
        plain_fps = max(plain_fps, frames / seconds)
        plain_cpu = min(plain_cpu, cpu / frames)
        ingested, seconds, cpu, jpeg_bytes = _ingest(path)
        if ingested != frames:
            raise RuntimeError(f"ingest produced {ingested} frames, plain decoding {frames}")
        ingest_fps = max(ingest_fps, ingested / seconds)
        ingest_cpu = min(ingest_cpu, cpu / ingested)
    jpeg_cpu = min(_jpeg_cpu(path) for _ in range(repeats))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {
        "video": path.name,
        "video_bytes": path.stat().st_size,
        "frames": frames,
        "cpus": cpus,
        "plain_decode_fps": round(plain_fps, 1),
        "ingest_fps": round(ingest_fps, 1),
        "ratio": round(ingest_fps / plain_fps, 3),
        "plain_decode_cpu_ms_per_frame": round(plain_cpu * 1000, 3),
        "ingest_cpu_ms_per_frame": round(ingest_cpu * 1000, 3),
        "jpeg_only_cpu_ms_per_frame": round(jpeg_cpu * 1000, 3),
        "ceiling_ratio": round(cpus / (plain_cpu + jpeg_cpu) / plain_fps, 3),
        "mean_jpeg_bytes": jpeg_bytes // max(frames, 1),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", type=Path, help="video to measure (default: make a test clip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the best counts")
    args = parser.parse_args()
    if args.video is not None:
        result = measure_ingest(args.video, args.repeats)
    else:
        with tempfile.TemporaryDirectory(prefix="cvcycle-bench-") as tmp:
            clip = make_test_video(Path(tmp) / "bench-720p.mp4")
            result = measure_ingest(clip, args.repeats)
    print(f"plain PyAV decode : {result['plain_decode_fps']:8.1f} frames/s")
    print(f"iter_jpeg_frames  : {result['ingest_fps']:8.1f} frames/s (every frame, JPEG q90)")
    print(f"ratio             : {result['ratio']:8.3f}")
    print(
        f"CPU per frame     : {result['plain_decode_cpu_ms_per_frame']:.2f} ms decode, "
        f"{result['ingest_cpu_ms_per_frame']:.2f} ms ingest, "
        f"{result['jpeg_only_cpu_ms_per_frame']:.2f} ms RGB+JPEG alone"
    )
    print(f"ceiling ratio     : {result['ceiling_ratio']:8.3f} (all cores decoding + encoding, no overhead)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
