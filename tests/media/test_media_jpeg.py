"""encode_jpeg / decode_jpeg: round trips, input checks, and rejecting bytes that are not JPEG."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from cvcycle.errors import InvalidInput, InvalidMedia
from cvcycle.media import decode_jpeg, encode_jpeg

from .conftest import COLOURS, noise_frames


def test_round_trip_keeps_size_and_colour() -> None:
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    for i, colour in enumerate(COLOURS[:4]):
        rgb[:, i * 16 : (i + 1) * 16] = colour
    out = decode_jpeg(encode_jpeg(rgb))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    for i, colour in enumerate(COLOURS[:4]):
        # The inner part of each stripe (chroma subsampling blurs the edges).
        block = out[:, i * 16 + 4 : (i + 1) * 16 - 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(block - colour).max() <= 6, (colour, block)


def test_decoded_array_is_writable() -> None:
    out = decode_jpeg(encode_jpeg(noise_frames(1, width=16, height=16)[0]))
    out[0, 0] = 0  # callers draw on frames


def test_quality_changes_size() -> None:
    rgb = noise_frames(1, width=128, height=96)[0]
    assert len(encode_jpeg(rgb, quality=30)) < len(encode_jpeg(rgb, quality=95))


def test_same_input_same_bytes() -> None:
    rgb = noise_frames(1, width=64, height=64)[0]
    assert encode_jpeg(rgb) == encode_jpeg(rgb.copy())


def test_non_contiguous_input() -> None:
    rgb = noise_frames(1, width=64, height=64)[0]
    view = rgb[::2, ::2]
    assert decode_jpeg(encode_jpeg(view)).shape == (32, 32, 3)


def test_concurrent_encodes_do_not_mix() -> None:
    # Encoders share a pool of scratch files; each thread must get back its own image.
    images = noise_frames(8, width=96, height=64)
    expected = [encode_jpeg(img) for img in images]
    results: dict[int, bytes] = {}

    def work(i: int) -> None:
        for _ in range(5):
            data = encode_jpeg(images[i])
            if data != expected[i]:
                results[i] = data
                return
        results[i] = expected[i]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == dict(enumerate(expected))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((0, 10, 3), dtype=np.uint8),
    ],
)
def test_encode_rejects_non_rgb(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        encode_jpeg(bad)


def test_encode_rejects_bad_quality() -> None:
    with pytest.raises(InvalidInput, match="quality"):
        encode_jpeg(np.zeros((8, 8, 3), dtype=np.uint8), quality=101)


def test_decode_rejects_other_formats() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    with pytest.raises(InvalidMedia, match="not a JPEG"):
        decode_jpeg(buf.getvalue())


def test_decode_rejects_truncated_jpeg() -> None:
    data = encode_jpeg(noise_frames(1, width=64, height=64)[0])
    with pytest.raises(InvalidMedia, match=r"^JPEG data: "):
        decode_jpeg(data[: len(data) // 2])


def test_decode_grey_jpeg_gives_rgb() -> None:
    buf = io.BytesIO()
    Image.new("L", (12, 8), 77).save(buf, format="JPEG")
    out = decode_jpeg(buf.getvalue())
    assert out.shape == (8, 12, 3)
    assert np.abs(out.astype(int) - 77).max() <= 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_does_not_share_scratch_files() -> None:
    # Encoders reuse in-memory scratch files; a forked child (multiprocessing, pre-forking
    # servers) must not write into the parent's.
    first, second = noise_frames(2, width=96, height=64)
    expected_first, expected_second = encode_jpeg(first), encode_jpeg(second)
    pid = os.fork()
    if pid == 0:  # the child: encode, report through the exit status, never return into pytest
        ok = all(encode_jpeg(second) == expected_second for _ in range(3))
        os._exit(0 if ok else 1)
    for _ in range(3):
        assert encode_jpeg(first) == expected_first
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
