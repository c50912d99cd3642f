"""Media for the UI: a medium's facts and frame N of it as JPEG (immutable, cached by browsers)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from cvcycle.api.deps import DbDep, Int64, StoreDep
from cvcycle.data.frame_images import MediaInfo, frame_image, get_media_info

router = APIRouter(prefix="/api/media", tags=["media"])

# A medium is content-addressed, so its frame N never changes.
_IMMUTABLE = "public, max-age=31536000, immutable"


@router.get("/{media_id}")
def media(media_id: Int64, db: DbDep) -> MediaInfo:
    return get_media_info(db, media_id)


@router.get(
    "/{media_id}/frames/{index}.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The frame as JPEG."}},
)
def frame(
    media_id: Int64,
    index: Int64,
    request: Request,
    db: DbDep,
    store: StoreDep,
    near: Literal["keyframe"] | None = None,
) -> Response:
    """Frame ``index`` as JPEG; ``?near=keyframe`` may answer with its keyframe (``X-Frame-Index``)."""
    image = frame_image(db, store, media_id, index, keyframe=near == "keyframe")
    headers = {"Cache-Control": _IMMUTABLE, "ETag": image.etag, "X-Frame-Index": str(image.index)}
    if request.headers.get("if-none-match") == image.etag:
        return Response(status_code=304, headers=headers)
    return Response(image.jpeg, media_type="image/jpeg", headers=headers)
