"""Media: reading and writing video and images, and sampling frames as JPEG.

``probe`` says what a file is; ``iter_jpeg_frames`` turns a video (every N-th frame) or an image into
JPEG frames for storage and annotation; ``encode_jpeg`` / ``decode_jpeg`` convert single frames;
``write_video`` makes reproducible MP4 files. Anything that cannot be read raises
``cvcycle.errors.InvalidMedia`` with a message that starts with the file's name.

Video goes through FFmpeg (PyAV), still images through Pillow.
"""

from __future__ import annotations

from cvcycle.media.frames import EncodedFrame, iter_jpeg_frames
from cvcycle.media.jpeg import decode_jpeg, encode_jpeg
from cvcycle.media.probe import MediaInfo, probe
from cvcycle.media.writer import write_video

__all__ = [
    "EncodedFrame",
    "MediaInfo",
    "decode_jpeg",
    "encode_jpeg",
    "iter_jpeg_frames",
    "probe",
    "write_video",
]
