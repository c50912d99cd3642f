"""write_video: reproducible bytes, atomic replacement, input checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cvcycle.errors import InvalidInput
from cvcycle.media import iter_jpeg_frames, probe, write_video

from .conftest import FPS, noise_frames


def test_same_frames_same_bytes(tmp_path: Path) -> None:
    frames = noise_frames(20)
    write_video(frames, tmp_path / "a.mp4", fps=FPS)
    write_video(iter(frames), tmp_path / "b.mp4", fps=FPS)  # any iterable, e.g. a generator
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


# Writes a small clip with moving content (B-frames, x264's macroblock tree at work).
_WRITE_CLIP = """
import sys
from pathlib import Path
import numpy as np
from cvcycle.media import write_video
ys, xs = np.mgrid[0:240, 0:320]
frames = []
for t in range(30):
    rgb = np.stack([(xs + 3 * t) % 256, (ys * 2 + t) % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
    rgb[40 + t : 90 + t, 30 + 4 * t : 90 + 4 * t] = (250, 40, 40)
    frames.append(rgb)
write_video(frames, Path(sys.argv[1]), fps=10)
"""


def test_same_bytes_whatever_the_heap_holds(tmp_path: Path) -> None:
    # glibc fills fresh allocations with MALLOC_PERTURB_'s byte: an encoder that reads memory it
    # never wrote then gives different bytes for the same frames. (x264's AVX-512 kernels did.)
    outputs = []
    for perturb in ("85", "170"):
        path = tmp_path / f"perturb-{perturb}.mp4"
        env = {**os.environ, "MALLOC_PERTURB_": perturb}
        subprocess.run([sys.executable, "-c", _WRITE_CLIP, str(path)], env=env, check=True, timeout=120)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]


def test_different_frames_different_bytes(tmp_path: Path) -> None:
    write_video(noise_frames(5, seed=1), tmp_path / "a.mp4", fps=FPS)
    write_video(noise_frames(5, seed=2), tmp_path / "b.mp4", fps=FPS)
    assert (tmp_path / "a.mp4").read_bytes() != (tmp_path / "b.mp4").read_bytes()


def test_crf_and_codec(tmp_path: Path) -> None:
    frames = noise_frames(5)
    write_video(frames, tmp_path / "fine.mp4", fps=FPS, crf=10)
    write_video(frames, tmp_path / "coarse.mp4", fps=FPS, crf=40)
    assert (tmp_path / "coarse.mp4").stat().st_size < (tmp_path / "fine.mp4").stat().st_size
    write_video(frames, tmp_path / "mpeg4.mp4", fps=FPS, codec="mpeg4")
    info = probe(tmp_path / "mpeg4.mp4")
    assert (info.codec, info.frame_count) == ("mpeg4", 5)


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")
    write_video(noise_frames(3), path, fps=FPS)
    assert len(list(iter_jpeg_frames(path))) == 3


def test_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"previous version")

    def frames() -> Iterator[np.ndarray]:
        yield from noise_frames(5)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        write_video(frames(), path, fps=FPS)
    assert path.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_failure_without_previous_file(tmp_path: Path) -> None:
    frames = [*noise_frames(2), np.zeros((60, 80, 3), dtype=np.uint8)]  # size changes mid-way
    with pytest.raises(InvalidInput, match="frame 2"):
        write_video(frames, tmp_path / "clip.mp4", fps=FPS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "no frames"),
        ([np.zeros((11, 16, 3), dtype=np.uint8)], "even"),
        ([np.zeros((16, 16), dtype=np.uint8)], "HxWx3"),
        ([np.zeros((16, 16, 3), dtype=np.int32)], "HxWx3"),
    ],
)
def test_bad_frames(tmp_path: Path, frames: list[np.ndarray], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        write_video(frames, tmp_path / "clip.mp4", fps=FPS)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path) -> None:
    frames = noise_frames(1)
    with pytest.raises(InvalidInput, match="fps"):
        write_video(frames, tmp_path / "a.mp4", fps=0)
    with pytest.raises(InvalidInput, match="crf"):
        write_video(frames, tmp_path / "a.mp4", fps=FPS, crf=60)
    with pytest.raises(InvalidInput, match="encoder"):
        write_video(frames, tmp_path / "a.mp4", fps=FPS, codec="no-such-codec")
