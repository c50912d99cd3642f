"""iter_jpeg_frames: sampling, timestamps, colours, images, and refusing damaged files."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cvcycle.errors import InvalidInput, InvalidMedia
from cvcycle.media import EncodedFrame, decode_jpeg, iter_jpeg_frames, probe, write_video

from .conftest import COLOURS, FPS, HEIGHT, WIDTH, noise_frames, write_plain

MakeVideo = Callable[[int], tuple[Path, list[np.ndarray]]]
COLOUR_TOLERANCE = 6.0  # per channel, on the mean: x264 + JPEG at default quality stay well inside


def _consume(path: Path, **kwargs: int) -> tuple[list[EncodedFrame], InvalidMedia | None]:
    """All frames up to the error, and the error (or None)."""
    frames: list[EncodedFrame] = []
    try:
        for frame in iter_jpeg_frames(path, **kwargs):
            frames.append(frame)
    except InvalidMedia as err:
        return frames, err
    return frames, None


def test_every_frame_in_order_with_timestamps(colour_video: MakeVideo) -> None:
    path, written = colour_video(23)
    frames = list(iter_jpeg_frames(path))
    assert len(frames) == len(written) == probe(path).frame_count
    assert [f.index for f in frames] == list(range(23))
    assert [f.timestamp_s for f in frames] == pytest.approx([i / FPS for i in range(23)], abs=1e-6)
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)


def test_every_third_frame(colour_video: MakeVideo) -> None:
    path, _ = colour_video(23)
    frames = list(iter_jpeg_frames(path, every=3))
    assert [f.index for f in frames] == list(range(0, 23, 3))
    assert [f.timestamp_s for f in frames] == pytest.approx([i / FPS for i in range(0, 23, 3)], abs=1e-6)


def test_colours_survive_encoding(colour_video: MakeVideo) -> None:
    path, written = colour_video(len(COLOURS) * 2)
    for frame in iter_jpeg_frames(path):
        rgb = decode_jpeg(frame.jpeg)
        assert rgb.shape == (HEIGHT, WIDTH, 3)
        mean = rgb.reshape(-1, 3).mean(axis=0)
        expected = written[frame.index].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - expected).max() <= COLOUR_TOLERANCE, (frame.index, mean, expected)


def test_output_is_baseline_jpeg(colour_video: MakeVideo) -> None:
    path, _ = colour_video(3)
    jpeg = next(iter_jpeg_frames(path)).jpeg
    assert jpeg[:2] == b"\xff\xd8"  # SOI
    assert b"\xff\xc0" in jpeg  # SOF0: baseline DCT (progressive would be SOF2)
    assert b"\xff\xc2" not in jpeg
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")


def test_many_frames_keep_their_order(tmp_path: Path) -> None:
    # More frames than the encoding window, each identifiable by its colour: the thread pool
    # must hand them back in source order.
    shades = [np.full((64, 64, 3), (i * 4, 255 - i * 4, 128), dtype=np.uint8) for i in range(60)]
    path = tmp_path / "ramp.mp4"
    write_video(shades, path, fps=25)
    frames = list(iter_jpeg_frames(path, every=2))
    assert [f.index for f in frames] == list(range(0, 60, 2))
    for frame in frames:
        red = decode_jpeg(frame.jpeg)[..., 0].mean()
        assert abs(red - frame.index * 4) <= COLOUR_TOLERANCE, frame.index


def test_closing_early_releases_everything(colour_video: MakeVideo) -> None:
    path, _ = colour_video(40)
    before = threading.active_count()
    frames = iter_jpeg_frames(path)
    first = next(frames)
    frames.close()  # type: ignore[attr-defined]
    assert first.index == 0
    assert threading.active_count() <= before


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg")])
def test_image_is_one_frame(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"still.{suffix}"
    Image.new("RGB", (40, 30), COLOURS[0]).save(path, format=fmt)
    frames = list(iter_jpeg_frames(path, every=5))
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.index, frame.timestamp_s, frame.width, frame.height) == (0, 0.0, 40, 30)
    mean = decode_jpeg(frame.jpeg).reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - COLOURS[0]).max() <= COLOUR_TOLERANCE


def test_image_is_turned_upright(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (40, 30), COLOURS[1]).save(path, exif=exif)
    frame = next(iter_jpeg_frames(path))
    assert (frame.width, frame.height) == (30, 40)
    assert decode_jpeg(frame.jpeg).shape == (40, 30, 3)


def test_grey_and_alpha_images_become_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("L", (20, 10), 90).save(grey)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (20, 10), (10, 200, 30, 128)).save(rgba)
    for path in (grey, rgba):
        rgb = decode_jpeg(next(iter_jpeg_frames(path)).jpeg)
        assert rgb.shape == (10, 20, 3)


def test_sixteen_bit_image_keeps_its_range(tmp_path: Path) -> None:
    # Depth/thermal PNGs: 16-bit grey must map onto 0..255, not saturate at 255.
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((10, 20), 32768, dtype=np.uint16)).save(path)
    rgb = decode_jpeg(next(iter_jpeg_frames(path)).jpeg)
    assert np.abs(rgb.astype(int) - 128).max() <= 2


@pytest.mark.parametrize("every", [0, -1])
def test_bad_every(colour_video: MakeVideo, every: int) -> None:
    path, _ = colour_video(2)
    with pytest.raises(InvalidInput, match="every"):
        iter_jpeg_frames(path, every=every)


def test_bad_quality(colour_video: MakeVideo) -> None:
    path, _ = colour_video(2)
    with pytest.raises(InvalidInput, match="quality"):
        iter_jpeg_frames(path, quality=0)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_text("definitely not a video\n" * 10)
    frames, err = _consume(path)
    assert frames == []
    assert err is not None and str(err).startswith("clip.mp4: ")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.touch()
    with pytest.raises(InvalidMedia, match=r"^clip\.mp4: empty file$"):
        iter_jpeg_frames(path)


def test_png_with_corrupted_body(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    Image.fromarray(noise_frames(1, width=64, height=48)[0]).save(path)
    data = bytearray(path.read_bytes())
    body = data.index(b"IDAT") + 4
    data[body + 20 : body + 220] = b"\xff" * 200
    path.write_bytes(bytes(data))
    frames, err = _consume(path)
    assert frames == []
    assert err is not None and str(err).startswith("broken.png: corrupt image")


def test_mp4_cut_in_half_raises_after_the_good_frames(noise_video: Path, tmp_path: Path) -> None:
    # write_video puts the index first, so half a file still opens and starts decoding: the
    # damage only shows where the data stops.
    data = noise_video.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    frames, err = _consume(path)
    assert err is not None, "a truncated file must not end quietly"
    assert 0 < len(frames) < 60
    assert [f.index for f in frames] == list(range(len(frames)))
    assert str(err).startswith(f"half.mp4: truncated after frame {len(frames) - 1}: ")


def test_mp4_cut_between_frames(noise_video: Path, tmp_path: Path) -> None:
    # A cut exactly at a packet boundary reads as a clean end of stream to FFmpeg; only the
    # container's declared frame count shows that frames are missing.
    with av.open(str(noise_video)) as container:
        starts = [p.pos for p in container.demux(video=0) if p.size]
    path = tmp_path / "cut.mp4"
    path.write_bytes(noise_video.read_bytes()[: starts[40]])
    frames, err = _consume(path)
    assert len(frames) == 40
    assert err is not None
    assert str(err) == "cut.mp4: truncated after frame 39: the container lists 60 frames, the file holds 40"


def test_matroska_cut_in_half(tmp_path: Path) -> None:
    # Matroska declares no frame count, only a duration: the check falls back to it.
    whole = write_plain(tmp_path / "whole.mkv", noise_frames(60), "matroska").read_bytes()
    path = tmp_path / "half.mkv"
    path.write_bytes(whole[: len(whole) // 2])
    frames, err = _consume(path)
    assert err is not None
    assert 0 < len(frames) < 60
    assert str(err).startswith(f"half.mkv: truncated after frame {len(frames) - 1}: ")


def test_mp4_with_garbage_in_the_middle(noise_video: Path, tmp_path: Path) -> None:
    data = bytearray(noise_video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8000] = b"\xff" * 8000
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    frames, err = _consume(path)
    assert err is not None
    assert len(frames) < 60
    assert str(err).startswith(f"garbled.mp4: corrupt after frame {len(frames) - 1}: ")
