"""probe: what a file is, and InvalidMedia naming the file for anything that is not media."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cvcycle.errors import InvalidInput, InvalidMedia
from cvcycle.media import MediaInfo, probe

from .conftest import FPS, HEIGHT, WIDTH, noise_frames, write_plain


def test_probe_video(colour_video: Callable[[int], tuple[Path, list[np.ndarray]]]) -> None:
    path, _ = colour_video(25)
    info = probe(path)
    assert info.duration_s == pytest.approx(2.5, abs=0.05)
    assert info == MediaInfo(
        kind="video", width=WIDTH, height=HEIGHT, fps=float(FPS), frame_count=25,
        duration_s=info.duration_s, codec="h264",
    )  # fmt: skip


def test_probe_matroska_has_no_declared_frame_count(tmp_path: Path) -> None:
    info = probe(write_plain(tmp_path / "clip.mkv", noise_frames(12), "matroska"))
    assert (info.kind, info.width, info.height, info.fps) == ("video", WIDTH, HEIGHT, float(FPS))
    assert info.frame_count is None
    assert info.duration_s == pytest.approx(1.2, abs=0.05)


@pytest.mark.parametrize(("fmt", "codec"), [("PNG", "png"), ("JPEG", "jpeg")])
def test_probe_image(tmp_path: Path, fmt: str, codec: str) -> None:
    path = tmp_path / f"picture.{codec}"
    Image.fromarray(noise_frames(1, width=64, height=48)[0]).save(path, format=fmt)
    assert probe(path) == MediaInfo(
        kind="image", width=64, height=48, fps=None, frame_count=1, duration_s=None, codec=codec
    )


def test_probe_image_reports_the_upright_size(tmp_path: Path) -> None:
    # EXIF orientation 6: stored landscape, shown portrait (as phones write it).
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(noise_frames(1, width=64, height=48)[0]).save(path, exif=exif)
    info = probe(path)
    assert (info.width, info.height) == (48, 64)


def test_probe_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(InvalidMedia, match=r"^notes\.mp4: "):
        probe(path)


def test_probe_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(InvalidMedia, match=r"^empty\.mp4: empty file$"):
        probe(path)


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"^gone\.mp4: no such file$"):
        probe(tmp_path / "gone.mp4")


def test_probe_is_an_invalid_input_error(tmp_path: Path) -> None:
    # The shells map InvalidInput to a user error (exit 2 / HTTP 422); InvalidMedia must be one.
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidInput):
        probe(path)


def test_probe_png_with_corrupted_body(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(noise_frames(1, width=64, height=48)[0]).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    body = data.index(b"IDAT") + 4
    # Header and chunk framing stay intact; the deflate stream inside IDAT is garbage.
    data[body + 20 : body + 220] = b"\xff" * 200
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidMedia, match=r"^broken\.png: corrupt image"):
        probe(path)


def test_probe_mp4_cut_before_its_index(tmp_path: Path) -> None:
    # PyAV's default MP4 puts the index (moov) at the end: half a file has none.
    whole = write_plain(tmp_path / "whole.mp4", noise_frames(30), "mp4").read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidMedia, match=r"^half\.mp4: not a decodable media file"):
        probe(path)


def test_probe_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(InvalidMedia, match=r"^sound\.wav: no video stream$"):
        probe(path)
