"""Rendering: determinism within and across processes, lighting statistics, MP4 output, bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from cvcycle.errors import InvalidInput
from cvcycle.synth import (
    ClipSpec,
    generate_clips,
    render_frame,
    render_frames,
    render_label_frame,
    write_clip,
)

# The digest covers the specs (ground truth) and every pixel, so any drift in either shows.
_DIGEST = """
import hashlib
from cvcycle.synth import generate_clips, render_frames
h = hashlib.sha256()
for spec in generate_clips(2, "night", dogs=True, seed=7, seconds=2.0):
    h.update(repr(spec).encode())
    for frame in render_frames(spec):
        h.update(frame.tobytes())
print(h.hexdigest())
"""


def _digest_here() -> str:
    h = hashlib.sha256()
    for spec in generate_clips(2, "night", dogs=True, seed=7, seconds=2.0):
        h.update(repr(spec).encode())
        for frame in render_frames(spec):
            h.update(frame.tobytes())
    return h.hexdigest()


def test_generate_is_deterministic() -> None:
    a = generate_clips(3, "dim", dogs=True, seed=5, seconds=3.0)
    b = generate_clips(3, "dim", dogs=True, seed=5, seconds=3.0)
    assert a == b
    assert generate_clips(1, "dim", dogs=True, seed=5, seconds=3.0)[0] == a[0], "clip i must not depend on n"
    assert a[0] != a[1]
    assert generate_clips(1, "dim", dogs=True, seed=6, seconds=3.0)[0].boxes != a[0].boxes


def test_render_is_deterministic(day_clips: list[ClipSpec]) -> None:
    spec = day_clips[1]
    first = list(render_frames(spec))
    second = list(render_frames(spec))
    assert len(first) == spec.num_frames
    assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    assert first[0].shape == (spec.height, spec.width, 3) and first[0].dtype == np.uint8
    # Random access renders the same pixels as the sequential pass (noise is seeded per frame).
    assert np.array_equal(render_frame(spec, 17), first[17])
    # ... and consecutive frames differ (noise, motion), so the clip is not a still.
    assert not np.array_equal(first[0], first[1])


def test_determinism_across_processes() -> None:
    # A different hash seed in the child proves nothing depends on Python's salted hash().
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    child = subprocess.run(
        [sys.executable, "-c", _DIGEST], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert child == _digest_here()


def _background_noise(spec: ClipSpec, t: int) -> float:
    """Temporal noise: std of the difference of two frames over pixels that are room in both."""
    a, b = render_frame(spec, t).astype(np.float64), render_frame(spec, t + 1).astype(np.float64)
    room = (render_label_frame(spec, t) == 0) & (render_label_frame(spec, t + 1) == 0)
    return float((a - b)[room].std() / np.sqrt(2))


def test_night_is_darker_noisier_and_gray(
    day_clips: list[ClipSpec], night_dog_clips: list[ClipSpec], dim_dog_clips: list[ClipSpec]
) -> None:
    day = [render_frame(s, 10).astype(np.float64) for s in day_clips[:3]]
    night = [render_frame(s, 10).astype(np.float64) for s in night_dog_clips]
    dim = [render_frame(s, 10).astype(np.float64) for s in dim_dog_clips]
    assert max(f.mean() for f in night) < min(f.mean() for f in day) - 30
    assert max(f.mean() for f in dim) < min(f.mean() for f in day) - 30
    day_noise = max(_background_noise(s, 10) for s in day_clips[:3])
    assert min(_background_noise(s, 10) for s in night_dog_clips) > 3 * day_noise
    assert min(_background_noise(s, 10) for s in dim_dog_clips) > 2 * day_noise
    # Infrared mode is grayscale; dim light is warm (red over blue) unlike day.
    for f in night:
        assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2])

    def warmth(frames: list[np.ndarray]) -> float:
        return float(np.mean([f[..., 0].mean() / f[..., 2].mean() for f in frames]))

    assert warmth(dim) > warmth(day) + 0.3
    # Low contrast at night: the spread of pixel values is compressed.
    assert np.mean([f.std() for f in night]) < np.mean([f.std() for f in day])


def test_write_clip_produces_a_decodable_mp4(tmp_path: Path) -> None:
    spec = generate_clips(1, "day", dogs=True, seed=3, seconds=2.5)[0]
    out = write_clip(spec, tmp_path / "clips" / f"{spec.name}.mp4")
    assert out == tmp_path / "clips" / f"{spec.name}.mp4" and out.stat().st_size > 1000
    assert [p.name for p in out.parent.iterdir()] == [out.name], "temporary files left behind"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == spec.num_frames == 25
    assert all(f.shape == (spec.height, spec.width, 3) for f in frames)
    # Lossy, but the decoded video is the rendered one.
    rendered = render_frame(spec, 12).astype(np.float64)
    assert np.abs(frames[12].astype(np.float64) - rendered).mean() < 8


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, "dusk"), {}),
        ((1, "DAY"), {}),
        ((0, "day"), {}),
        ((-2, "day"), {}),
        ((1.5, "day"), {}),
        ((1, "day"), {"dogs": "yes"}),
        ((1, "day"), {"seed": "1"}),
        ((1, "day"), {"width": 321}),
        ((1, "day"), {"height": 0}),
        ((1, "day"), {"fps": 0}),
        ((1, "day"), {"seconds": 0}),
        ((1, "day"), {"seconds": -1.0}),
        ((1, "day"), {"seconds": float("inf")}),
        ((1, "day"), {"seconds": float("nan")}),
    ],
)
def test_bad_arguments_raise_invalid_input(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        generate_clips(*args, **kwargs)  # type: ignore[arg-type]


def test_bad_frame_index_raises_invalid_input(day_clips: list[ClipSpec]) -> None:
    spec = day_clips[0]
    with pytest.raises(InvalidInput):
        render_frame(spec, spec.num_frames)
    with pytest.raises(InvalidInput):
        render_label_frame(spec, -1)
