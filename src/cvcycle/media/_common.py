"""Helpers shared by the media modules: file checks, error wording, opening files by kind.

Every failure to read a file becomes one ``InvalidMedia`` whose message starts with the file's
name, so a batch ingest can report "clip.mp4: truncated after frame 41: ..." without the caller
knowing whether Pillow or FFmpeg found the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.container
from PIL import Image, UnidentifiedImageError

from cvcycle.errors import InvalidMedia

# Still-image formats read with Pillow. Listing them (instead of letting Pillow try every plugin)
# keeps Pillow's weak-magic plugins (TGA, MPEG, ...) from claiming a video file. (Cameras' MPO
# files come in through the JPEG opener.)
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "AVIF")

# What Pillow raises on a damaged body: OSError ("image file is truncated", decoder errors),
# SyntaxError (broken PNG chunks), ValueError / EOFError (bad headers, short reads).
PIL_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)

# FFmpeg demuxers that read single images; a file only they accept is a damaged image, not a video.
_IMAGE_DEMUXERS = ("image2",)


def invalid(path: Path, reason: str) -> InvalidMedia:
    """The one wording of a media error: the file's name, a colon, the reason."""
    return InvalidMedia(f"{path.name}: {reason}")


def ffmpeg_reason(err: BaseException) -> str:
    """FFmpeg's message without the full path PyAV appends (the file name is already in front)."""
    if isinstance(err, av.FFmpegError) and err.strerror:
        return str(err.strerror)
    return str(err) or err.__class__.__name__


def check_file(path: Path) -> None:
    """Reject what is not a readable, non-empty regular file before any decoder sees it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise invalid(path, "no such file") from None
    except OSError as err:
        raise invalid(path, f"cannot read: {err.strerror or err}") from None
    if not os.path.isfile(path):
        raise invalid(path, "not a regular file")
    if st.st_size == 0:
        raise invalid(path, "empty file")


def open_image(path: Path) -> Image.Image | None:
    """The file as a lazily loaded Pillow image, or None when it is not one of IMAGE_FORMATS.

    Only the header is read here; callers must ``load()`` inside PIL_ERRORS handling to find a
    damaged body.
    """
    try:
        return Image.open(path, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as err:
        raise invalid(path, f"image too large: {err}") from None
    except PIL_ERRORS as err:
        raise invalid(path, f"corrupt image: {err}") from None


def open_video(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open the container and pick its first video stream; the caller closes the container."""
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise invalid(path, f"not a decodable media file: {ffmpeg_reason(err)}") from None
    try:
        fmt = container.format.name
        if any(name in _IMAGE_DEMUXERS or name.endswith("_pipe") for name in fmt.split(",")):
            raise invalid(path, f"damaged or unsupported image ({fmt})")
        if not container.streams.video:
            raise invalid(path, "no video stream")
        stream = container.streams.video[0]
    except BaseException:
        container.close()
        raise
    return container, stream
