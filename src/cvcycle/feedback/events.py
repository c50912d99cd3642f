"""Production events: reading a JSON Lines feed into the ``events`` table.

One line is one event::

    {"id": "cam3-000123",                       optional, the producer's id: pushing it again is a no-op
     "source": "cam-3",
     "time": "2026-11-25T07:00:00+03:00",        ISO-8601 with an offset ("Z" for UTC)
     "model": "detector@2",                       or {"name": "detector", "version": 2}; never an alias
     "detections": [{"cls": "person", "score": 0.91, "box": [x, y, w, h]}],
     "frame": {"media_sha256": "...", "index": 12} or {"id": frame id}
     -- or --
     "snapshot": "path/to/image.jpg" or "<base64 JPEG>" or "data:image/jpeg;base64,..."}

A bad line is reported with its number and the reason, and the good lines are kept: all good
lines go in together in one transaction. Boxes are pixel ``[x, y, w, h]`` with a positive size;
a box sticking out of the image is clipped to it (detectors' raw outputs often overhang by a few
pixels), one wholly outside is an error. Snapshots go to the blob store as JPEG: JPEG bytes are
kept as they are, other image formats are re-encoded. Relative snapshot paths are resolved against
the directory of the events file.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from PIL import Image, UnidentifiedImageError
from sqlalchemy import ColumnElement, and_, bindparam, insert, select, text
from sqlalchemy.orm import Session

from cvcycle.boxes import Box, check_class_name, clip_box
from cvcycle.db.bulk import bulk_insert
from cvcycle.db.engine import INT64_MAX, Database
from cvcycle.db.models import Event, Frame, Media, as_utc
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.media._common import IMAGE_FORMATS, PIL_ERRORS
from cvcycle.media.jpeg import encode_image
from cvcycle.models.detections import Detections
from cvcycle.refs import ModelRef, format_ref, is_valid_name, parse_model_ref
from cvcycle.registry.versions import resolve_model_filter
from cvcycle.store import BlobStore

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A snapshot string this long cannot be a path; it is base64 without further ado.
_MAX_PATH_CHARS = 4096
# The largest snapshot decoded (40 megapixels): a small compressed file can claim a huge image.
MAX_SNAPSHOT_PIXELS = 40_000_000
_QUERY_CHUNK = 500
_INSERT_BATCH = 5_000


class BadLine(Exception):
    """Why one line of an events file is rejected; caught per line, never leaves this module."""


@dataclass(frozen=True)
class LineError:
    """A rejected line of an events file: its 1-based number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class PushResult:
    """What a push did: how many events were stored, skipped as already known, and the bad lines.

    A push with bad lines is not ``ok`` (the CLI exits 2), but its good lines are kept; it
    ``failed`` as a whole only when it had bad lines and no line was kept or already known (the
    API answers 422 with ``failure``).
    """

    kept: int
    duplicates: int
    bad: int  # len(errors)
    errors: list[LineError]
    event_ids: list[int]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def failed(self) -> bool:
        return bool(self.errors) and not self.kept and not self.duplicates

    @property
    def failure(self) -> str:
        """Why a push that ``failed`` kept nothing: its first bad lines."""
        return "no event kept: " + "; ".join(str(e) for e in self.errors[:3])


@dataclass(frozen=True)
class EventRecord:
    """An event as every shell shows it; ``model`` is ``NAME@VERSION``."""

    id: int
    external_id: str | None
    source: str
    time: datetime
    model: str
    detections: list[dict[str, Any]]  # Detections.to_json() form
    frame_id: int | None
    snapshot_key: str | None
    width: int
    height: int

    @classmethod
    def of(cls, row: Event, **extra: Any) -> Self:
        """The record of ``row``; ``extra`` fills the fields a subclass adds."""
        return cls(
            id=row.id,
            external_id=row.external_id,
            source=row.source,
            time=as_utc(row.time),
            model=format_ref(row.model_name, row.model_version),
            detections=list(row.detections),
            frame_id=row.frame_id,
            snapshot_key=row.snapshot_key,
            width=row.width,
            height=row.height,
            **extra,
        )


def any_of(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` with the values inlined as literals on PostgreSQL.

    psycopg prepares a statement it has run five times, and PostgreSQL then switches to a
    generic plan, in which a parameter list cannot be hashed: every row is compared with every
    value (measured: 100 ms for 500 ids against 10,000 events, 1 ms with literals). Literal ids
    and hashes are safe to inline: SQLAlchemy renders them with the dialect's quoting.
    """
    literal = session.get_bind().dialect.name == "postgresql"
    return column.in_(bindparam(None, list(values), expanding=True, literal_execute=literal))


def get_event(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(
            f"event {event_id} does not exist", hint="see the newest events with `cvcycle events list`"
        )
    return event


def of_model(session: Session, model: str | ModelRef) -> ColumnElement[bool]:
    """The condition the events of ``model`` meet: every version of ``detector``, one of the others.

    ``model`` is a filter (``resolve_model_filter``): ``detector@2``, ``detector@latest`` and
    ``detector:production`` name one version, the last two as the registry has them now.
    """
    ref = resolve_model_filter(session, model)
    if ref.number is None:
        return Event.model_name == ref.name
    return and_(Event.model_name == ref.name, Event.model_version == ref.number)


def list_events(
    db: Database,
    *,
    model: str | ModelRef | None = None,
    source: str | None = None,
    limit: int = 100,
) -> list[EventRecord]:
    """The newest events first, optionally of one model (see ``of_model``) and/or source."""
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")
    query = select(Event).order_by(Event.time.desc(), Event.id.desc()).limit(limit)
    if source is not None:
        query = query.where(Event.source == source)
    with db.read() as session:
        if model is not None:
            query = query.where(of_model(session, model))
        return [EventRecord.of(row) for row in session.scalars(query)]


# -- parsing one line -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Image:
    """Where an event's image is: a known frame or a stored snapshot, and its size."""

    frame_id: int | None
    snapshot_key: str | None
    snapshot_size: int | None
    width: int
    height: int


@dataclass
class _Parsed:
    """A line that passed the checks that need neither the database nor the store."""

    line: int
    external_id: str | None
    source: str
    time: datetime
    model: ModelRef
    detections: list[dict[str, Any]]
    frame_by_id: int | None = None
    frame_by_media: tuple[str, int] | None = None
    snapshot: str | None = None
    image: _Image | None = None  # set once the snapshot is stored


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj or obj[name] is None:
        raise BadLine(f"missing field {name!r}")
    return obj[name]


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadLine(f"time must be an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadLine(f"time {value!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        # A naive time would land on a different day per reader; the producer knows its zone.
        raise BadLine(f"time {value!r} has no UTC offset (add 'Z' or '+03:00')")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable moment
        raise BadLine(f"time {value!r} is out of range in UTC") from None


def _pinned(text: str) -> ModelRef | None:
    """``text`` as ``NAME@N``; None for anything else, an alias or ``NAME@latest`` included."""
    try:
        ref = parse_model_ref(text)
    except InvalidInput:
        return None
    return ref if ref.number is not None else None


def _parse_model(value: Any) -> ModelRef:
    """The version that emitted the event: an alias or ``latest`` moves, so an event names ``NAME@N``."""
    if isinstance(value, str):
        ref = _pinned(value)
        if ref is None:
            raise BadLine(f"model {value!r} is not NAME@VERSION (the version that emitted the event)")
        return ref
    if isinstance(value, dict):
        name, version = value.get("name"), value.get("version")
        if isinstance(name, str) and is_valid_name(name) and isinstance(version, int | str):
            ref = None if isinstance(version, bool) else _pinned(format_ref(name, version))
            if ref is not None:
                return ref
        raise BadLine(f"model {value!r} needs a name and a version number >= 1")
    raise BadLine(f"model must be 'NAME@VERSION' or {{'name', 'version'}}, got {value!r}")


def _parse_box(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise BadLine(f"{where}: box must be [x, y, w, h], got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise BadLine(f"{where}: box must hold numbers, got {value!r}")
    try:
        box = [float(v) for v in value]
    except OverflowError:
        raise BadLine(f"{where}: box has a number too large") from None
    if not all(math.isfinite(v) for v in box):
        raise BadLine(f"{where}: box {value!r} has a non-finite number")
    if box[2] <= 0 or box[3] <= 0:
        raise BadLine(f"{where}: box {value!r} has a non-positive width or height")
    return box


def _parse_detections(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadLine(f"detections must be a list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        where = f"detection {i}"
        if not isinstance(item, dict):
            raise BadLine(f"{where}: must be an object with cls, score and box")
        try:
            cls = _check_text(check_class_name(item.get("cls"), where), f"{where}: cls")
        except InvalidInput as exc:
            raise BadLine(str(exc)) from None
        score = item.get("score", 1.0)
        if not isinstance(score, int | float) or isinstance(score, bool) or not 0.0 <= score <= 1.0:
            raise BadLine(f"{where}: score must be a number from 0 to 1, got {score!r}")
        out.append({"cls": cls, "score": float(score), "box": _parse_box(item.get("box"), where)})
    return out


def _not_json(literal: str) -> Any:
    raise BadLine(f"bad JSON: {literal} is not a JSON number")


def _check_text(value: str, what: str) -> str:
    """``value``, refused when it holds a lone surrogate (``"\\ud800"``): no database stores one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLine(f"{what} {value!r} is not valid unicode (a lone surrogate)") from None
    return value


def _parse_line(number: int, text: str) -> _Parsed:
    try:
        obj = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise BadLine(f"bad JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise BadLine("bad JSON: nested too deeply") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise BadLine("bad JSON: an integer too large") from None
    if not isinstance(obj, dict):
        raise BadLine(f"an event must be a JSON object, got {type(obj).__name__}")
    external_id = obj.get("id")
    if external_id is not None:
        if isinstance(external_id, int) and not isinstance(external_id, bool):
            external_id = str(external_id)
        if not isinstance(external_id, str) or not external_id or len(external_id) > 200:
            raise BadLine(f"id must be a non-empty string of at most 200 characters, got {external_id!r}")
        _check_text(external_id, "id")
    source = _field(obj, "source")
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise BadLine(f"source must be a non-empty string, got {source!r}")
    _check_text(source, "source")
    parsed = _Parsed(
        line=number,
        external_id=external_id,
        source=source,
        time=_parse_time(_field(obj, "time")),
        model=_parse_model(_field(obj, "model")),
        detections=_parse_detections(_field(obj, "detections")),
    )
    frame, snapshot = obj.get("frame"), obj.get("snapshot")
    if (frame is None) == (snapshot is None):
        raise BadLine("missing field 'frame' or 'snapshot' (exactly one of the two)")
    if snapshot is not None:
        if not isinstance(snapshot, str) or not snapshot:
            raise BadLine("snapshot must be a path or a base64 image string")
        parsed.snapshot = snapshot
        return parsed
    if not isinstance(frame, dict):
        raise BadLine(f"frame must be {{'media_sha256', 'index'}} or {{'id'}}, got {frame!r}")
    if "id" in frame:
        frame_id = frame["id"]
        if not isinstance(frame_id, int) or isinstance(frame_id, bool) or not 1 <= frame_id <= INT64_MAX:
            raise BadLine(f"frame id must be a positive integer, got {frame_id!r}")
        parsed.frame_by_id = frame_id
        return parsed
    sha, index = frame.get("media_sha256"), frame.get("index")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise BadLine(f"frame.media_sha256 must be 64 hex digits, got {sha!r}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= INT64_MAX:
        raise BadLine(f"frame.index must be an integer >= 0, got {index!r}")
    parsed.frame_by_media = (sha.lower(), index)
    return parsed


# -- images -----------------------------------------------------------------------------------------


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _read_snapshot(text: str, base_dir: Path | None, allow_paths: bool = True) -> tuple[bytes, int, int]:
    """JPEG bytes, width and height of a snapshot given as a path, base64 or a data: URL."""
    if text.startswith("data:"):
        data = _decode_base64(text.partition(",")[2])
        if not data:
            raise BadLine("unreadable snapshot: a data: URL without a base64 payload")
        return _snapshot_jpeg(data)
    path: Path | None = None
    if allow_paths and len(text) < _MAX_PATH_CHARS:
        path = Path(text)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            is_file = path.is_file()
        except (OSError, ValueError):  # a name too long or with a NUL byte: base64, not a path
            is_file = False
        if is_file:
            try:
                return _snapshot_jpeg(path.read_bytes())
            except OSError as exc:
                raise BadLine(f"unreadable snapshot {text!r}: {exc.strerror}") from None
    data = _decode_base64(text)
    missing = f"no such file {str(path)!r}" if path is not None else "not valid base64"
    if not allow_paths and not data:
        missing = "not valid base64 (file paths are not read from an upload: send the image as base64)"
    if not data:
        raise BadLine(f"unreadable snapshot: {missing}")
    try:
        return _snapshot_jpeg(data)
    except BadLine:
        # A short string that happens to be valid base64 ("frame0001") was meant as a file name.
        if len(text) < 256 and path is not None:
            raise BadLine(f"unreadable snapshot: {missing}, nor a base64 image") from None
        raise


def _snapshot_jpeg(data: bytes) -> tuple[bytes, int, int]:
    """JPEG bytes of the image and its width and height; other formats are re-encoded."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size  # from the header: checked before any pixel is decoded
            if width * height > MAX_SNAPSHOT_PIXELS:
                raise BadLine(
                    f"unreadable snapshot: {width}x{height} is over the limit of "
                    f"{MAX_SNAPSHOT_PIXELS:,} pixels"
                )
            image.load()
            if image.format == "JPEG" and image.mode == "RGB":
                return data, width, height
            return encode_image(image), width, height
    except UnidentifiedImageError:
        raise BadLine("unreadable snapshot: not an image") from None
    except Image.DecompressionBombError:
        raise BadLine("unreadable snapshot: image too large") from None
    except PIL_ERRORS as exc:
        raise BadLine(f"unreadable snapshot: corrupt image ({exc})") from None


def _clip_detections(detections: list[dict[str, Any]], width: int, height: int) -> list[dict[str, Any]]:
    """Clip boxes to the image; a box wholly outside it is an error. Returns the Detections.to_json() form."""
    if not detections:
        return []
    names = sorted({d["cls"] for d in detections})
    clipped = []
    for i, det in enumerate(detections):
        box = clip_box(Box(det["cls"], *det["box"]), width, height)
        if box is None:
            raise BadLine(f"detection {i}: box {det['box']!r} lies outside the {width}x{height} image")
        clipped.append({**box.to_json(), "score": det["score"]})
    return Detections.from_json(clipped, names).to_json()


# -- the push ---------------------------------------------------------------------------------------


def _numbered_lines(lines: Iterable[str] | Path) -> tuple[Iterator[tuple[int, str]], Path | None]:
    if isinstance(lines, Path):
        if not lines.is_file():
            raise NotFound(f"events file {str(lines)!r} does not exist")

        def read() -> Iterator[tuple[int, str]]:
            with lines.open(encoding="utf-8", errors="replace") as fh:
                yield from enumerate(fh, start=1)

        return read(), lines.parent
    return enumerate(lines, start=1), None


def _resolve_frames(session: Session, parsed: list[_Parsed]) -> dict[Any, tuple[int, int, int]]:
    """Frame references -> (frame id, width, height), for those that exist."""
    found: dict[Any, tuple[int, int, int]] = {}
    by_id = sorted({p.frame_by_id for p in parsed if p.frame_by_id is not None})
    for start in range(0, len(by_id), _QUERY_CHUNK):
        chunk = by_id[start : start + _QUERY_CHUNK]
        for fid, w, h in session.execute(
            select(Frame.id, Frame.width, Frame.height).where(any_of(session, Frame.id, chunk))
        ):
            found[int(fid)] = (int(fid), int(w), int(h))
    by_media = sorted({p.frame_by_media for p in parsed if p.frame_by_media is not None})
    for start in range(0, len(by_media), _QUERY_CHUNK):
        pairs = by_media[start : start + _QUERY_CHUNK]
        rows = session.execute(
            select(Media.sha256, Frame.index, Frame.id, Frame.width, Frame.height)
            .join(Frame, Frame.media_id == Media.id)
            .where(
                any_of(session, Media.sha256, sorted({sha for sha, _ in pairs})),
                any_of(session, Frame.index, sorted({index for _, index in pairs})),
            )
        )
        for sha, index, fid, w, h in rows:
            found[(sha, int(index))] = (int(fid), int(w), int(h))
    return found


def push_events(
    db: Database, store: BlobStore, lines: Iterable[str] | Path, *, allow_paths: bool = True
) -> PushResult:
    """Store the events of a JSON Lines feed; bad lines are reported, the good ones kept together.

    ``lines`` is a path to a ``.jsonl`` file or any iterable of lines. Blank lines are skipped.
    Events whose ``id`` is already stored (or repeated within the feed) are counted as duplicates
    and not stored again. ``allow_paths=False`` (an upload from elsewhere) refuses snapshot paths,
    so a client cannot make the server read its own files.
    """
    errors: list[LineError] = []
    duplicates = 0
    numbered, base_dir = _numbered_lines(lines)
    parsed: list[_Parsed] = []
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            parsed.append(_parse_line(number, line))
        except BadLine as exc:
            errors.append(LineError(number, str(exc)))

    # Snapshots are decoded and stored before the write transaction, so that the database's
    # write lock is not held while images are read; events already known skip that work.
    with db.read() as session:
        known = _known_external_ids(session, [p.external_id for p in parsed if p.external_id])
    good: list[_Parsed] = []
    for p in parsed:
        try:
            if p.snapshot is not None and p.external_id not in known:
                _store_snapshot(p, store, base_dir, allow_paths)
            good.append(p)
        except BadLine as exc:
            errors.append(LineError(p.line, str(exc)))

    with db.write() as session:
        # Asked again: another push may have stored some of these ids since.
        known = _known_external_ids(session, [p.external_id for p in good if p.external_id])
        frames = _resolve_frames(session, good)
        rows: list[dict[str, Any]] = []
        for p in good:
            if p.external_id is not None and p.external_id in known:
                duplicates += 1
                continue
            try:
                rows.append(_event_row(p, frames))
            except BadLine as exc:
                errors.append(LineError(p.line, str(exc)))
                continue
            if p.external_id is not None:
                known.add(p.external_id)
        event_ids = _insert_events(session, rows)
    errors.sort(key=lambda e: e.line)
    return PushResult(len(rows), duplicates, len(errors), errors, event_ids)


def _known_external_ids(session: Session, ids: list[str]) -> set[str]:
    wanted = sorted(set(ids))
    known: set[str] = set()
    for start in range(0, len(wanted), _QUERY_CHUNK):
        chunk = wanted[start : start + _QUERY_CHUNK]
        known.update(
            session.scalars(select(Event.external_id).where(any_of(session, Event.external_id, chunk)))
        )
    return known


def _store_snapshot(p: _Parsed, store: BlobStore, base_dir: Path | None, allow_paths: bool) -> None:
    assert p.snapshot is not None
    jpeg, width, height = _read_snapshot(p.snapshot, base_dir, allow_paths)
    # Boxes are checked before the write, so a line with a bad box leaves no blob behind.
    p.detections = _clip_detections(p.detections, width, height)
    ref = store.put_bytes(jpeg)
    p.image = _Image(None, ref.key, ref.size, width, height)


def _event_row(p: _Parsed, frames: dict[Any, tuple[int, int, int]]) -> dict[str, Any]:
    image = p.image
    if image is None:
        ref_key: Any = p.frame_by_id if p.frame_by_id is not None else p.frame_by_media
        if ref_key not in frames:
            if p.frame_by_id is not None:
                raise BadLine(f"unknown frame reference: frame {p.frame_by_id} does not exist")
            sha, index = p.frame_by_media  # type: ignore[misc]
            raise BadLine(f"unknown frame reference: no frame {index} of a medium with sha256 {sha}")
        frame_id, width, height = frames[ref_key]
        p.detections = _clip_detections(p.detections, width, height)
        image = _Image(frame_id, None, None, width, height)
    return {
        "external_id": p.external_id,
        "source": p.source,
        "time": p.time,
        "model_name": p.model.name,
        "model_version": p.model.number,
        "detections": p.detections,
        "detection_count": len(p.detections),
        "frame_id": image.frame_id,
        "snapshot_key": image.snapshot_key,
        "snapshot_size": image.snapshot_size,
        "width": image.width,
        "height": image.height,
        "created_at": datetime.now(UTC),
    }


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # COPY is several times faster than INSERT ... RETURNING but returns nothing, so the ids
        # are drawn from the table's sequence first.
        ids = [
            int(i)
            for i in session.scalars(
                text("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)"),
                {"n": len(rows)},
            )
        ]
        bulk_insert(session, Event, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return ids
    out: list[int] = []
    for start in range(0, len(rows), _INSERT_BATCH):
        query = insert(Event).returning(Event.id, sort_by_parameter_order=True)
        out.extend(int(i) for i in session.scalars(query, rows[start : start + _INSERT_BATCH]))
    return out
