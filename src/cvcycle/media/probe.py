"""What a media file is: kind, size, rate, length and codec, read from its headers.

Images are recognised by Pillow (a fixed list of still formats), everything else is handed to
FFmpeg. ``probe`` also decodes a little (the whole image, the first video frame), because a file
whose header parses but whose body does not is the common kind of damage and must be rejected here,
before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
from PIL import Image

from cvcycle.media._common import (
    PIL_ERRORS,
    check_file,
    ffmpeg_reason,
    invalid,
    open_image,
    open_video,
)

# EXIF orientations that rotate by 90 degrees, so the displayed width and height swap.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file. For images fps and duration are None and frame_count is 1."""

    kind: Literal["video", "image"]
    width: int
    height: int
    fps: float | None
    frame_count: int | None  # as the container declares it; None when it does not say
    duration_s: float | None
    codec: str  # FFmpeg decoder name for video ("h264"), Pillow format for images ("jpeg")


def probe(path: Path) -> MediaInfo:
    """Describe ``path``; raises InvalidMedia naming the file if it is empty, not media, or damaged."""
    path = Path(path)
    check_file(path)
    image = open_image(path)
    if image is not None:
        with image:
            return _probe_image(path, image)
    return _probe_video(path)


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as displayed, after the EXIF orientation iter_jpeg_frames applies."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
    except PIL_ERRORS:
        # Unreadable EXIF is not a damaged image; it is shown (and encoded) unrotated.
        orientation = None
    if orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _probe_image(path: Path, image: Image.Image) -> MediaInfo:
    try:
        # Decoding the whole image is the only way to find a damaged body (bad deflate data in a
        # PNG, a JPEG cut short); images are small enough for that to be cheap.
        image.load()
    except Image.DecompressionBombError as err:
        raise invalid(path, f"image too large: {err}") from None
    except PIL_ERRORS as err:
        raise invalid(path, f"corrupt image: {err}") from None
    width, height = oriented_size(image)
    codec = (image.format or "image").lower()
    return MediaInfo(
        kind="image", width=width, height=height, fps=None, frame_count=1, duration_s=None, codec=codec
    )


def _probe_video(path: Path) -> MediaInfo:
    container, stream = open_video(path)
    with container:
        try:
            # One frame proves the stream is decodable (a header without data, an unsupported
            # codec); its size is the real one even where the container leaves it out.
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            raise invalid(path, f"cannot decode the first frame: {ffmpeg_reason(err)}") from None
        if first is None:
            raise invalid(path, "no decodable frames")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        duration_s: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        return MediaInfo(
            kind="video",
            width=first.width,
            height=first.height,
            fps=fps,
            frame_count=stream.frames or None,
            duration_s=duration_s,
            codec=stream.codec_context.name,
        )
