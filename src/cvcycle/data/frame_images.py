"""Frame pixels by medium and index, for the UI: a stored JPEG when the frame was sampled at ingest,
otherwise decoded from the medium's video on request (``cvcycle.media.seek``).

Media are content-addressed, so a medium's frame N never changes: the ETag names the medium's
digest and the index, and callers may let browsers cache the answer for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from cvcycle.db.engine import Database
from cvcycle.db.models import Frame, Media
from cvcycle.errors import NotFound
from cvcycle.media.seek import read_frame_jpeg, read_keyframe_jpeg
from cvcycle.store import BlobStore

DISPLAY_QUALITY = 85


@dataclass(frozen=True)
class MediaInfo:
    """A medium's facts for the UI; ``frame_url`` is the template of its frames' URLs (``{index}``)."""

    id: int
    kind: str
    file_name: str
    width: int
    height: int
    fps: float | None
    frame_count: int
    sample_every: int
    frame_url: str


@dataclass(frozen=True)
class FrameImage:
    jpeg: bytes
    etag: str
    index: int  # the frame these pixels are: the one asked for, or its keyframe (see frame_image)


def _media(db: Database, media_id: int) -> Media:
    with db.read() as session:
        media = session.get(Media, media_id)
        if media is None:
            raise NotFound(f"medium {media_id} does not exist")
        return media


def get_media_info(db: Database, media_id: int) -> MediaInfo:
    m = _media(db, media_id)
    return MediaInfo(
        m.id,
        m.kind,
        m.file_name,
        m.width,
        m.height,
        m.fps,
        m.frame_count,
        m.sample_every,
        f"/api/media/{m.id}/frames/{{index}}.jpg",
    )


def frame_image(
    db: Database, store: BlobStore, media_id: int, index: int, *, keyframe: bool = False
) -> FrameImage:
    """Frame ``index`` of medium ``media_id`` as JPEG; NotFound naming both if there is no such frame.

    With ``keyframe``, a frame that is not stored may be answered by the keyframe at or before
    it (cheap to decode): a preview while a timeline is scrubbed. ``FrameImage.index`` says which.
    """
    media = _media(db, media_id)
    if not 0 <= index < max(media.frame_count, 1):
        raise NotFound(
            f"frame {index} of medium {media_id} does not exist",
            hint=f"medium {media_id} has frames 0..{media.frame_count - 1}",
        )
    with db.read() as session:
        stored = session.execute(
            select(Frame.blob_key, Frame.blob_size).where(Frame.media_id == media_id, Frame.index == index)
        ).first()
    if stored is not None:
        return FrameImage(store.get_bytes(stored[0], stored[1]), _etag(media, index), index)
    if media.kind != "video":
        raise NotFound(f"frame {index} of medium {media_id} does not exist")
    path = store.local_path(media.blob_key, media.size)
    if keyframe:
        got, jpeg = read_keyframe_jpeg(path, index, DISPLAY_QUALITY)
        return FrameImage(jpeg, _etag(media, got), got)
    return FrameImage(read_frame_jpeg(path, index, DISPLAY_QUALITY), _etag(media, index), index)


def _etag(media: Media, index: int) -> str:
    return f'"{media.sha256[:32]}-{index}"'
