"""Random access to the frames of a video file, fast enough for an annotator scrubbing a timeline.

Decoding frame N of an H.264 stream means decoding from the keyframe before it. A ``FrameReader``
keeps its file open and remembers where its decoder is, so the common requests are cheap:

* the next frames (playback, stepping, the UI's prefetch of frames ahead) continue decoding
  from where the last request stopped, without seeking;
* frames just decoded (prefetch requests arriving out of order) come from a small ring of
  decoded frames;
* anything else (a jump on the timeline) seeks to the keyframe at or before N and decodes
  forward, so its cost is bounded by the stream's keyframe interval.

Readers are shared per file through ``reader_for`` (a small LRU), and each serialises its decoder
with a lock; JPEG encoding happens outside the lock, so concurrent requests overlap on cores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import av
import av.container

from cvcycle.errors import InvalidInput, NotFound
from cvcycle.media._common import check_file, open_video
from cvcycle.media.jpeg import check_quality, encode_video_frame

# Decoding forward is cheaper than seeking while the target is within about one keyframe interval.
_FORWARD_LIMIT = 48
# Decoded frames kept per reader: enough for a prefetch window arriving out of order.
_RING_SIZE = 12
_MAX_READERS = 4


class ReaderClosed(Exception):
    """The reader was closed (evicted from the shared ones) while a request was on its way."""


class FrameReader:
    """One open video file, decoding frame ``index`` on request (0-based, every decoded frame)."""

    def __init__(self, path: Path) -> None:
        check_file(path)
        self.path = path
        self._container, self._stream = open_video(path)
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            self._container.close()
            raise InvalidInput(f"{path.name}: no frame rate, frames cannot be addressed by index")
        self.fps = float(rate)
        self._start = self._stream.start_time or 0
        self._lock = threading.Lock()
        self._frames: Iterator[av.VideoFrame] | None = None
        self._position = -1  # index of the last frame the decoder produced
        self._ring: OrderedDict[int, av.VideoFrame] = OrderedDict()
        self.seeks = 0  # how many requests needed a seek (for the bench)
        self.closed = False

    def _index_of(self, frame: av.VideoFrame) -> int:
        if frame.pts is None or self._stream.time_base is None:
            return self._position + 1
        return round(float((frame.pts - self._start) * self._stream.time_base) * self.fps)

    def _seek(self, index: int) -> None:
        time_base = self._stream.time_base
        assert time_base is not None
        target = self._start + int(index / self.fps / time_base)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._position = -1
        self.seeks += 1

    def _remember(self, index: int, frame: av.VideoFrame) -> None:
        self._ring[index] = frame
        self._ring.move_to_end(index)
        while len(self._ring) > _RING_SIZE:
            self._ring.popitem(last=False)

    def frame(self, index: int) -> av.VideoFrame:
        """The decoded frame ``index``; NotFound past the end of the stream."""
        if index < 0:
            raise NotFound(f"{self.path.name}: frame {index} does not exist (indices start at 0)")
        with self._lock:
            if self.closed:
                raise ReaderClosed(str(self.path))
            cached = self._ring.get(index)
            if cached is not None:
                return cached
            if self._frames is None or not (self._position < index <= self._position + _FORWARD_LIMIT):
                self._seek(index)
            assert self._frames is not None
            for frame in self._frames:
                got = self._index_of(frame)
                self._position = got
                if got >= index - _RING_SIZE:
                    self._remember(got, frame)
                if got >= index:
                    break
            else:
                self._frames = None
            found = self._ring.get(index)
            if found is None:
                raise NotFound(f"{self.path.name}: frame {index} does not exist (the stream ends before it)")
            return found

    def keyframe(self, index: int) -> tuple[int, av.VideoFrame]:
        """The keyframe at or before ``index`` and its own index: one decoded frame after a seek.

        What the UI shows while a timeline is being scrubbed: on a long-GOP stream frame N can cost
        decoding a whole GOP, its keyframe costs one frame. The decoder is left there, so the exact
        frame asked for next decodes forward from it without a second seek.
        """
        if index < 0:
            raise NotFound(f"{self.path.name}: frame {index} does not exist (indices start at 0)")
        with self._lock:
            if self.closed:
                raise ReaderClosed(str(self.path))
            cached = self._ring.get(index)
            if cached is not None:
                return index, cached
            self._seek(index)
            assert self._frames is not None
            first = next(self._frames, None)
            if first is not None:
                got = self._index_of(first)
                self._position = got
                self._remember(got, first)
                if got <= index:
                    return got, first
            else:
                self._frames = None
        # Nothing decodable at or before it from the seek (a stream that starts late, or its end):
        # the exact frame decides, and says NotFound past the end.
        return index, self.frame(index)

    def jpeg(self, index: int, quality: int = 85) -> bytes:
        check_quality(quality)
        return encode_video_frame(self.frame(index), quality)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._frames = None
            self._ring.clear()
            self._container.close()


_readers: OrderedDict[Path, FrameReader] = OrderedDict()
_readers_lock = threading.Lock()


def reader_for(path: Path) -> FrameReader:
    """The shared reader of ``path`` (opened on first use; the least recently used is closed)."""
    path = Path(path)
    with _readers_lock:
        reader = _readers.get(path)
        if reader is not None:
            _readers.move_to_end(path)
            return reader
    reader = FrameReader(path)
    with _readers_lock:
        existing = _readers.get(path)
        if existing is not None:
            reader.close()
            return existing
        _readers[path] = reader
        while len(_readers) > _MAX_READERS:
            _, old = _readers.popitem(last=False)
            old.close()
    return reader


def read_keyframe_jpeg(path: Path, index: int, quality: int = 85) -> tuple[int, bytes]:
    """The keyframe at or before ``index`` of the video at ``path``: its index and JPEG."""
    check_quality(quality)
    try:
        got, frame = reader_for(path).keyframe(index)
    except ReaderClosed:
        got, frame = reader_for(path).keyframe(index)
    return got, encode_video_frame(frame, quality)


def read_frame_jpeg(path: Path, index: int, quality: int = 85) -> bytes:
    """Frame ``index`` of the video at ``path`` as JPEG, through the shared reader."""
    try:
        return reader_for(path).jpeg(index, quality)
    except ReaderClosed:
        # Evicted by another request in the meantime: the next reader_for opens it again.
        return reader_for(path).jpeg(index, quality)
