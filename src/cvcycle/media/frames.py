"""Frame sampling: every N-th frame of a video (or the one frame of an image) as JPEG.

The pipeline, tuned with bench/ingest.py on a 2-core machine:

* FFmpeg decodes with its own threads (``thread_type = "AUTO"``) in the generator's thread.
* Kept frames go to a small thread pool that converts them to RGB and JPEG-encodes them; both
  steps run without the GIL (see ``jpeg.py``), so decoding and encoding overlap on all cores.
  JPEG encoding costs more CPU than H.264 decoding, so the pool, not the decoder, sets the pace.
* Results are yielded in source order through a bounded window, so memory stays at a handful of
  frames however long the video, and a slow consumer simply pauses decoding.

Damage is reported, never papered over: a read or decode error mid-stream, or a stream that ends
before the frames (or the duration) its container declares, raises InvalidMedia after the frames
decoded so far have been yielded, with the index of the last good frame.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
from PIL import Image, ImageOps

from cvcycle.errors import InvalidInput, InvalidMedia
from cvcycle.media._common import PIL_ERRORS, check_file, ffmpeg_reason, invalid, open_image, open_video
from cvcycle.media.jpeg import check_quality, encode_image, encode_video_frame

# Encoder threads: one per core the process may use (JPEG encoding is the costly step), capped so
# that a big machine running several ingests at once does not get dozens of threads per ingest.
_MAX_WORKERS = 8

# Containers whose headers state the duration (rather than FFmpeg estimating it from the bitrate
# or from the file's last timestamp). Only for these is a stream ending early proof of truncation.
_DECLARED_DURATION_FORMATS = {"matroska", "webm", "mov", "mp4", "avi"}


@dataclass(frozen=True)
class EncodedFrame:
    """One sampled frame as JPEG, with where it sits in the source."""

    index: int  # frame index in the source (0-based, counting every decoded frame)
    timestamp_s: float  # presentation time in seconds from the start of the stream
    width: int
    height: int
    jpeg: bytes


def iter_jpeg_frames(path: Path, every: int = 1, quality: int = 90) -> Iterator[EncodedFrame]:
    """Yield every ``every``-th frame of a video, or the single frame of an image, as JPEG.

    Arguments and the file's existence are checked at call time; decoding happens as the iterator
    is consumed, and damage found on the way raises InvalidMedia naming the file, after the frames
    decoded before it. Closing the iterator early stops decoding and releases the file.
    """
    path = Path(path)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise InvalidInput(f"every must be a positive integer, got {every!r}")
    check_quality(quality)
    check_file(path)
    return _iter_file(path, every, quality)


def _iter_file(path: Path, every: int, quality: int) -> Iterator[EncodedFrame]:
    image = open_image(path)
    if image is not None:
        # Close the file before yielding: the consumer may hold the iterator for a long time.
        with image:
            frame = _image_frame(path, image, quality)
        yield frame
        return
    yield from _iter_video(path, every, quality)


def _image_frame(path: Path, image: Image.Image, quality: int) -> EncodedFrame:
    try:
        image.load()
        # Apply the camera's EXIF rotation: annotators must see the picture upright, and the
        # frame's size must match what probe() reported.
        upright = ImageOps.exif_transpose(image)
        jpeg = encode_image(upright, quality)
    except Image.DecompressionBombError as err:
        raise invalid(path, f"image too large: {err}") from None
    except PIL_ERRORS as err:
        raise invalid(path, f"corrupt image: {err}") from None
    return EncodedFrame(index=0, timestamp_s=0.0, width=upright.width, height=upright.height, jpeg=jpeg)


def _worker_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_WORKERS, cores))


def _iter_video(path: Path, every: int, quality: int) -> Iterator[EncodedFrame]:
    container, stream = open_video(path)
    workers = _worker_count()
    # Enough frames in flight to keep every worker busy while the consumer handles one result.
    window = 2 * workers + 2
    pending: deque[Future[EncodedFrame]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvcycle-jpeg")
    decoded = _decode(path, container, stream)
    try:
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        failure: InvalidMedia | None = None
        try:
            for index, frame in decoded:
                if index % every:
                    continue
                if frame.pts is not None and time_base is not None:
                    timestamp_s = float((frame.pts - start) * time_base)
                else:  # no timestamps (some raw streams): assume a constant rate
                    timestamp_s = float(index / rate) if rate else 0.0
                pending.append(pool.submit(_encode, frame, index, timestamp_s, quality))
                if len(pending) >= window:
                    yield pending.popleft().result()
        except InvalidMedia as err:
            # Hand out the good frames first: what a consumer receives must not depend on how
            # many frames happened to be in flight when the damage was found.
            failure = err
        while pending:
            yield pending.popleft().result()
        if failure is not None:
            raise failure
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        decoded.close()  # finish the demuxing generator before its container goes away
        container.close()


def _encode(frame: av.VideoFrame, index: int, timestamp_s: float, quality: int) -> EncodedFrame:
    jpeg = encode_video_frame(frame, quality)
    return EncodedFrame(
        index=index, timestamp_s=timestamp_s, width=frame.width, height=frame.height, jpeg=jpeg
    )


def _decode(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream
) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """Decoded frames with their indices; raises InvalidMedia on damage or a short stream.

    With frame threading FFmpeg reports few decoding errors (a frame that fails is just not
    output), so besides the errors it does raise this checks what the container promised: the
    number of frames in its index, its declared duration, and, for MP4/MOV, one frame per packet.
    """
    formats = set(container.format.name.split(","))
    file_size = path.stat().st_size
    read = 0  # intact packets with data
    discarded = 0  # of those, packets an edit list marks as not to be shown
    interlaced = False  # field pairs may come as two packets, so packets and frames differ
    end_pts: int | None = None  # furthest presentation end reached, in stream time base
    end_byte: int | None = None  # where in the file the last packet read ends, when known
    index = -1
    damage: str | None = None
    try:
        for packet in container.demux(stream):
            if packet.size:
                if packet.pos is not None and packet.pos >= 0:
                    end_byte = packet.pos + packet.size
                if packet.is_corrupt:
                    # The demuxer flags a packet it could not read whole (the file ends inside it)
                    # or whose integrity checks failed; either way its frame is damaged.
                    where = _seconds(packet.pts, stream)
                    if end_byte is not None and end_byte >= file_size:
                        damage = f"the file ends inside the frame at {where}"
                    else:
                        damage = f"damaged frame data at {where}"
                    break
                read += 1
                discarded += packet.is_discard
                if packet.pts is not None:
                    packet_end = packet.pts + (packet.duration or 0)
                    end_pts = packet_end if end_pts is None else max(end_pts, packet_end)
            for frame in packet.decode():
                index += 1
                interlaced = interlaced or frame.interlaced_frame
                yield index, frame
    except av.FFmpegError as err:
        damage = ffmpeg_reason(err)
    if damage is not None:
        # Drain what the decoder still holds (good frames queued before the damage): they are
        # part of "the frames decoded so far", and the index in the message must count them.
        try:
            for frame in stream.decode(None):
                index += 1
                yield index, frame
        except av.FFmpegError:
            pass  # the decoder is already broken; the damage is reported below
    if index < 0:
        raise invalid(path, "no decodable frames" + (f": {damage}" if damage else ""))
    short = _shortfall(container, stream, formats, read, end_pts)
    if damage is not None:
        # Damage where reading reached the end of the file is a cut-off file, elsewhere a
        # corrupt one; without byte positions, a stream shorter than declared says "cut off".
        at_eof = end_byte >= file_size if end_byte is not None else short is not None
        what = "truncated" if at_eof else "corrupt"
        raise invalid(path, f"{what} after frame {index}: {damage}")
    if short is not None:
        raise invalid(path, f"truncated after frame {index}: {short}")
    shown = read - discarded
    if "mov" in formats and not interlaced and index + 1 < shown:
        # MP4/MOV store one frame per packet; frames the decoder dropped were undecodable.
        raise invalid(path, f"corrupt: {shown - index - 1} of {shown} frames could not be decoded")


def _seconds(pts: int | None, stream: av.VideoStream) -> str:
    if pts is None or stream.time_base is None:
        return "an unknown time"
    return f"{float((pts - (stream.start_time or 0)) * stream.time_base):.2f}s"


def _shortfall(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    formats: set[str],
    read: int,
    end_pts: int | None,
) -> str | None:
    """Why the stream read so far is shorter than the container says, or None if it is not.

    FFmpeg reads a file cut between two packets as a clean end of stream, so this comparison is
    what catches it.
    """
    declared = stream.frames or 0
    if declared:
        # MP4/MOV and AVI list every frame in their index; an intact file yields all of them.
        if read < declared:
            return f"the container lists {declared} frames, the file holds {read}"
        return None
    if not formats & _DECLARED_DURATION_FORMATS or end_pts is None or stream.time_base is None:
        return None
    reached_s = float((end_pts - (stream.start_time or 0)) * stream.time_base)
    if stream.duration is not None:
        declared_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:  # Matroska states it for the whole file only
        declared_s = container.duration / av.time_base
    else:
        return None
    # Slack for containers that round durations or count a trailing frame differently.
    if reached_s < declared_s - max(0.5, 0.02 * declared_s):
        return f"the stream ends at {reached_s:.2f}s of a declared {declared_s:.2f}s"
    return None
