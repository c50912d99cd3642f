"""Random access to video frames: any order of requests gives the frames a straight decode gives."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import pytest

from cvcycle.errors import NotFound
from cvcycle.media.seek import FrameReader, reader_for

from .conftest import FPS, noise_frames


def _short_gop_video(path: Path, count: int, gop: int) -> Path:
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"bframes": "2", "sc_threshold": "0"}
        for rgb in noise_frames(count, seed=3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _straight(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("gop", [8, 250])
def test_random_order_matches_a_straight_decode(tmp_path: Path, gop: int) -> None:
    path = _short_gop_video(tmp_path / f"gop{gop}.mp4", 70, gop)
    truth = _straight(path)
    reader = FrameReader(path)
    order = list(range(70)) + random.Random(1).sample(range(70), 70) + [69, 0, 35, 36, 34, 60, 2]
    for index in order:
        assert np.array_equal(reader.frame(index).to_ndarray(format="rgb24"), truth[index]), index
    reader.close()


def test_stepping_forward_does_not_seek(tmp_path: Path) -> None:
    path = _short_gop_video(tmp_path / "step.mp4", 40, 8)
    reader = FrameReader(path)
    for index in range(10, 40):
        reader.frame(index)
    assert reader.seeks == 1
    reader.jpeg(39)  # from the ring of decoded frames
    assert reader.seeks == 1
    reader.close()


def test_frames_past_the_end_are_not_found(tmp_path: Path) -> None:
    path = _short_gop_video(tmp_path / "end.mp4", 20, 8)
    reader = reader_for(path)
    assert reader_for(path) is reader
    with pytest.raises(NotFound, match="frame 20"):
        reader.frame(20)
    with pytest.raises(NotFound, match="frame -1"):
        reader.frame(-1)
    assert reader.jpeg(19)[:2] == b"\xff\xd8"


def test_a_request_on_a_reader_closed_meanwhile_opens_it_again(tmp_path: Path) -> None:
    from cvcycle.media.seek import ReaderClosed, read_frame_jpeg

    path = _short_gop_video(tmp_path / "closed.mp4", 10, 8)
    reader = reader_for(path)
    reader.close()
    with pytest.raises(ReaderClosed):
        reader.frame(1)
    for i in range(5):  # evict it from the shared readers
        reader_for(_short_gop_video(tmp_path / f"other{i}.mp4", 4, 8))
    assert read_frame_jpeg(path, 3)[:2] == b"\xff\xd8"


def test_the_keyframe_of_a_frame_is_one_decode_away(tmp_path: Path) -> None:
    path = _short_gop_video(tmp_path / "keys.mp4", 40, 8)
    truth = _straight(path)
    reader = FrameReader(path)
    for index in (0, 5, 8, 15, 31, 39):
        got, frame = reader.keyframe(index)
        assert got == index - index % 8  # a keyframe every 8 frames (scene cuts are off)
        assert np.array_equal(frame.to_ndarray(format="rgb24"), truth[got])
        # The exact frame follows from there without another seek.
        seeks = reader.seeks
        assert np.array_equal(reader.frame(index).to_ndarray(format="rgb24"), truth[index])
        assert reader.seeks == seeks
    with pytest.raises(NotFound, match="frame -1"):
        reader.keyframe(-1)
    reader.close()
