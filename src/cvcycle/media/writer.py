"""Writing RGB frames to an MP4 file: reproducible bytes, never a partial file at the target path.

Used for synthetic clips, exports and tests, where the same frames must give the same file (so
content hashes are stable): the encoder runs single-threaded with bit-exact flags, and the file
carries no creation time. The MP4 is written with its index in front ("faststart") so browsers can
play it while it downloads, and tagged BT.709 limited range, the standard for HD video, so
players and our own decoder agree on its colours.
"""

from __future__ import annotations

import functools
import os
import platform
import uuid
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import av.container
import numpy as np

from cvcycle.errors import InvalidInput

# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value for BT.709
# (all three are 1) and AVColorRange MPEG (limited, 16-235).
_BT709 = 1
_RANGE_MPEG = 1

# Encoders that take a constant rate factor; others get their defaults.
_CRF_CODECS = {"libx264", "libx265"}


def write_video(
    frames: Iterable[np.ndarray], path: Path, fps: int, codec: str = "libx264", crf: int = 23
) -> None:
    """Encode HxWx3 uint8 RGB frames (all the same, even size) to an MP4 (yuv420p) at ``path``.

    The file is written under a temporary name in the same directory and renamed into place, so
    ``path`` either does not change or holds the complete video. Same frames and arguments, same
    bytes, for a given FFmpeg/x264 build on a given kind of CPU (x264's SIMD kernels for different
    instruction sets need not agree bit for bit).
    """
    path = Path(path)
    if not isinstance(fps, int) or isinstance(fps, bool) or fps < 1:
        raise InvalidInput(f"fps must be a positive integer, got {fps!r}")
    if codec in _CRF_CODECS and not 0 <= crf <= 51:
        raise InvalidInput(f"crf must be from 0 to 51, got {crf!r}")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        _encode(frames, tmp, fps, codec, crf)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _encode(frames: Iterable[np.ndarray], tmp: Path, fps: int, codec: str, crf: int) -> None:
    # +bitexact keeps version strings and anything time-dependent out of the container.
    options = {"movflags": "+faststart", "fflags": "+bitexact"}
    with av.open(str(tmp), mode="w", format="mp4", options=options) as out:
        stream: av.VideoStream | None = None
        shape: tuple[int, ...] = ()
        for i, rgb in enumerate(frames):
            rgb = _check_frame(rgb, i)
            if stream is None:
                shape = rgb.shape
                stream = _add_stream(out, codec, fps, crf, width=shape[1], height=shape[0])
            elif rgb.shape != shape:
                raise InvalidInput(f"frame {i} has shape {rgb.shape}, the first frame {shape}")
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            # Convert here rather than letting the encoder do it: single-threaded swscale with an
            # explicit matrix and range, matching the tags on the stream.
            yuv = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG", threads=1)
            yuv.pts = i
            yuv.time_base = stream.codec_context.time_base
            for packet in stream.encode(yuv):
                out.mux(packet)
        if stream is None:
            raise InvalidInput("cannot write a video with no frames")
        for packet in stream.encode(None):
            out.mux(packet)


def _check_frame(rgb: np.ndarray, i: int) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise InvalidInput(f"frame {i}: expected an HxWx3 uint8 RGB array, got shape {shape}")
    height, width = rgb.shape[:2]
    if width < 2 or height < 2 or width % 2 or height % 2:
        # yuv420p halves the chroma planes; odd sizes are rejected by the encoder anyway.
        raise InvalidInput(f"frame {i}: width and height must be even and at least 2, got {width}x{height}")
    return np.ascontiguousarray(rgb)


def _add_stream(
    out: av.container.OutputContainer, codec: str, fps: int, crf: int, width: int, height: int
) -> av.VideoStream:
    try:
        stream = out.add_stream(codec, rate=fps)
    except (av.FFmpegError, ValueError) as err:
        raise InvalidInput(f"unknown or unavailable video encoder {codec!r}: {err}") from None
    if not isinstance(stream, av.VideoStream):
        raise InvalidInput(f"{codec!r} is not a video encoder")
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    ctx = stream.codec_context
    ctx.time_base = Fraction(1, fps)
    # One thread: x264's threaded modes can split work differently between runs.
    ctx.thread_count = 1
    ctx.thread_type = "SLICE"
    ctx.flags |= av.codec.context.Flags.bitexact
    ctx.colorspace = _BT709
    ctx.color_primaries = _BT709
    ctx.color_trc = _BT709
    ctx.color_range = _RANGE_MPEG
    options: dict[str, object] = {}  # the type PyAV's stream.options is declared with
    if codec in _CRF_CODECS:
        options["crf"] = str(crf)
    if codec == "libx264":
        # Say "one thread" to x264 itself too, not only through the codec context.
        options["threads"] = "1"
        x264_params = ["threads=1", "lookahead-threads=1"]
        if _has_avx512():
            # x264's AVX-512 kernels (macroblock-tree, with B-frames) read uninitialised memory: on
            # such CPUs the same frames gave different bytes from run to run (shown by varying
            # MALLOC_PERTURB_; threads were already 1). Capping x264 at its AVX2 kernels makes the
            # output stable; every AVX-512 CPU has the AVX2/FMA3/BMI set these need (checked).
            x264_params.append("asm=AVX2")
        options["x264-params"] = ":".join(x264_params)
    stream.options = options
    return stream


@functools.cache
def _has_avx512() -> bool:
    """Whether this is an x86-64 CPU with AVX-512 (and the AVX2 set below it), read on Linux."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: leave x264 to its own detection
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return {"avx512f", "avx2", "fma", "bmi1", "bmi2"} <= flags
    return False
