"""Fixtures for the media tests: small videos and images made on the spot in ``tmp_path``.

Frames are solid colour blocks or seeded noise, so tests can check colours and reproducibility;
videos are tiny (160x120) to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from cvcycle.media import write_video

WIDTH, HEIGHT, FPS = 160, 120, 10

# Saturated and neutral colours: a wrong colour matrix or range shows up on the first ones.
COLOURS: list[tuple[int, int, int]] = [
    (220, 30, 30),
    (30, 200, 40),
    (40, 50, 210),
    (230, 220, 40),
    (20, 20, 20),
    (235, 235, 235),
    (128, 64, 200),
]


def colour_frames(count: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Frame i is a solid block of COLOURS[i % len(COLOURS)]."""
    return [np.full((height, width, 3), COLOURS[i % len(COLOURS)], dtype=np.uint8) for i in range(count)]


def noise_frames(count: int, seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Seeded random frames: expensive to encode, so every packet is large."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture
def colour_video(tmp_path: Path) -> Callable[[int], tuple[Path, list[np.ndarray]]]:
    """Write ``count`` colour frames with write_video; returns the path and the frames."""

    def make(count: int) -> tuple[Path, list[np.ndarray]]:
        frames = colour_frames(count)
        path = tmp_path / f"colours-{count}.mp4"
        write_video(frames, path, fps=FPS)
        return path, frames

    return make


@pytest.fixture
def noise_video(tmp_path: Path) -> Path:
    """60 frames of noise through write_video (MP4, index at the front)."""
    path = tmp_path / "noise.mp4"
    write_video(noise_frames(60), path, fps=FPS)
    return path


def write_plain(path: Path, frames: list[np.ndarray], container_format: str) -> Path:
    """Write frames with PyAV's defaults: MP4 with its index at the end, or Matroska."""
    with av.open(str(path), mode="w", format=container_format) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
