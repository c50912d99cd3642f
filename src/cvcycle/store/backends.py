"""The two ways blob bytes reach storage: the local filesystem directly, everything else via fsspec.

This module owns the storage primitives (stat, atomic write, read, delete, list) and nothing about
keys beyond the layout in :mod:`cvcycle.store.layout`. Validation, error translation and the read
cache live once in :class:`~cvcycle.store.blobs.BlobStore`, so both backends behave the same.

Backends speak in paths relative to the store root (``sha256/ab/cd/<key>``) and signal a missing
blob with :class:`FileNotFoundError`; the store turns that into :class:`~cvcycle.errors.NotFound`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from cvcycle.errors import Conflict, InvalidInput
from cvcycle.store.layout import BLOB_DIR, TMP_DIR, blob_rel, hash_stream


class Backend(Protocol):
    """What :class:`~cvcycle.store.blobs.BlobStore` needs from a storage location."""

    #: Threads ``put_many`` uses: enough to overlap hashing with I/O locally, more for network
    #: latency on object stores.
    write_concurrency: int

    def size(self, rel: str) -> int | None:
        """Size of the stored file, or None if there is none."""

    def modified(self, rel: str) -> float | None:
        """When the file was last written or refreshed (epoch seconds); None if absent or unknown."""

    def refresh(self, rel: str) -> None:
        """Mark an existing file as just written, best effort, so gc's grace period starts again."""

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Store ``data`` at ``rel`` atomically: readers see the whole blob or nothing."""

    def store_file(self, src: Path) -> tuple[str, int]:
        """Store the file ``src`` atomically under its digest; return (key, size)."""

    def read_bytes(self, rel: str, size_hint: int | None = None) -> bytes:
        """The whole file; FileNotFoundError if absent. ``size_hint`` is the expected size, if known."""

    def open_read(self, rel: str) -> BinaryIO:
        """A binary reader; FileNotFoundError if absent."""

    def delete(self, rel: str) -> None:
        """Remove the file; FileNotFoundError if absent (where the storage can tell)."""

    def iter_rels(self) -> Iterator[str]:
        """Every file path under the blob directory, relative to the root, in sorted order."""

    def iter_stats(self) -> Iterator[tuple[str, int, float | None]]:
        """Like iter_rels, with each file's size and modification time (None where unknown)."""

    def local_file(self, rel: str) -> Path | None:
        """The file itself if the storage is the local filesystem, else None."""

    def purge_temporaries(self, older_than: float, delete: bool = True) -> int:
        """Remove in-flight write leftovers older than ``older_than`` seconds; return the count.

        With ``delete=False`` only count them.
        """


def stat_file(path: str | Path) -> os.stat_result | None:
    """The stat of a regular file, or None if there is none at ``path``."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def unlink_quietly(path: str | Path) -> None:
    """Best-effort removal of a temporary; failing to clean up must not mask the real error."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def new_tmp_name(tmp_dir: str) -> str:
    """A collision-free temporary name. The pid prefix tells an operator which process left it."""
    return os.path.join(tmp_dir, f"{os.getpid()}-{uuid.uuid4().hex}")


def open_exclusive(path: str) -> BinaryIO:
    """Create ``path`` for writing (never truncating someone else's file), making parents on demand.

    The parents are created only after the first attempt fails: on the hot path that saves a
    ``makedirs`` per blob, and the root of a new store appears on its first write.
    """
    try:
        return open(path, "xb")  # the caller owns and closes the handle
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "xb")


def install(tmp: str, final: str) -> None:
    """Rename a complete temporary into place. ``os.replace`` is atomic within one filesystem."""
    try:
        os.replace(tmp, final)
    except FileNotFoundError:
        # The fan-out directories are created lazily, on the first blob that lands in them.
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)


def purge_dir(directory: str | Path, older_than: float, delete: bool = True) -> int:
    """Delete regular files in ``directory`` last modified more than ``older_than`` seconds ago.

    Returns how many; with ``delete=False`` they are only counted.
    """
    cutoff = time.time() - older_than
    removed = 0
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                if delete:
                    os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # another purger got there first
    return removed


class LocalBackend:
    """Blobs as plain files under a directory, using ``os`` directly.

    fsspec's LocalFileSystem adds path normalisation, info dicts and an extra file wrapper per call;
    for many 20 KB JPEGs that overhead is comparable to the write itself, so the local fast path
    goes straight to the OS.
    """

    write_concurrency = 4

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.fspath(root)
        self._tmp = os.path.join(self._root, TMP_DIR)

    def _path(self, rel: str) -> str:
        return os.path.join(self._root, rel)

    def size(self, rel: str) -> int | None:
        st = stat_file(self._path(rel))
        return None if st is None else st.st_size

    def modified(self, rel: str) -> float | None:
        st = stat_file(self._path(rel))
        return None if st is None else st.st_mtime

    def refresh(self, rel: str) -> None:
        # One syscall, only when a put finds its blob already there. Without it, an import that
        # re-adds a blob gc is about to collect (say, re-running an import that was killed) could
        # lose it between its put and its commit. Failing to refresh (a store owned by another
        # user) leaves the blob as it is: the grace period then counts from its first write.
        with contextlib.suppress(OSError):
            os.utime(self._path(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        # Write the whole blob under a temporary name, then rename: a writer killed at any point
        # leaves at most a file in tmp/, never a partial file at a final key. No fsync: the
        # guarantee is against killed processes, not power loss (see BlobStore.put_bytes).
        tmp = new_tmp_name(self._tmp)
        try:
            with open_exclusive(tmp) as sink:
                sink.write(data)
            install(tmp, self._path(rel))
        except BaseException:
            unlink_quietly(tmp)
            raise

    def store_file(self, src: Path) -> tuple[str, int]:
        tmp = new_tmp_name(self._tmp)
        try:
            # One pass: hash while copying into the temporary, so the key is known when the copy
            # ends and the source is read once (it may be a pipe, or a multi-GB video).
            with open(src, "rb") as source, open_exclusive(tmp) as sink:
                key, size = hash_stream(source, sink)
            rel = blob_rel(key)
            if self.size(rel) == size:
                unlink_quietly(tmp)  # already stored: keep the existing file, refresh its age
                self.refresh(rel)
            else:
                install(tmp, self._path(rel))
        except BaseException:
            unlink_quietly(tmp)
            raise
        return key, size

    def read_bytes(self, rel: str, size_hint: int | None = None) -> bytes:
        with open(self._path(rel), "rb") as f:
            return f.read()

    def open_read(self, rel: str) -> BinaryIO:
        return open(self._path(rel), "rb")  # the caller closes it

    def delete(self, rel: str) -> None:
        # Empty fan-out directories are kept: at most 65,536 of them, and removing them would race
        # with a concurrent writer that has just decided not to create them.
        os.unlink(self._path(rel))

    def iter_rels(self) -> Iterator[str]:
        # Walk only sha256/: temporaries in tmp/ are never listed, so GC and verify cannot mistake a
        # write in flight (or the leftover of a killed writer) for a blob.
        top = self._path(BLOB_DIR)
        for first in _sorted_dirs(top):
            for second in _sorted_dirs(os.path.join(top, first)):
                leaf = os.path.join(top, first, second)
                for name in _sorted_names(leaf, files=True):
                    yield f"{BLOB_DIR}/{first}/{second}/{name}"

    def iter_stats(self) -> Iterator[tuple[str, int, float | None]]:
        for rel in self.iter_rels():
            try:
                st = os.stat(self._path(rel))
            except FileNotFoundError:
                continue  # deleted since it was listed
            yield rel, st.st_size, st.st_mtime

    def local_file(self, rel: str) -> Path | None:
        return Path(self._path(rel))

    def purge_temporaries(self, older_than: float, delete: bool = True) -> int:
        return purge_dir(self._tmp, older_than, delete)


def _sorted_dirs(directory: str) -> list[str]:
    return _sorted_names(directory, files=False)


def _sorted_names(directory: str, *, files: bool) -> list[str]:
    # Materialise each directory before yielding from it, so no scandir handle stays open while the
    # caller works (it may delete blobs as it iterates). A directory removed meanwhile is empty.
    try:
        with os.scandir(directory) as it:
            return sorted(
                e.name
                for e in it
                if (e.is_file(follow_symlinks=False) if files else e.is_dir(follow_symlinks=False))
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def _changed(src: Path) -> Conflict:
    return Conflict(
        f"{src} changed while it was being stored; nothing was stored",
        hint="store files that are no longer being written to",
    )


class FsspecBackend:
    """Blobs as objects (or files) on any fsspec filesystem: s3://, gs://, memory://, ...

    Object stores make a single PUT (or a completed multipart upload) visible all at once, so writes
    go straight to the final key; there is no rename on an object store to emulate ``os.replace``.
    """

    write_concurrency = 8

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._s3 = type(fs).__module__.split(".")[0] == "s3fs" and hasattr(fs, "call_s3")

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def size(self, rel: str) -> int | None:
        path = self._path(rel)
        try:
            if self._s3:
                # s3fs's info() follows a 404 HEAD with a LIST to see whether the key is a
                # "directory"; blob keys never are, so a bare HEAD saves a round trip on every new
                # blob (the common case while ingesting).
                bucket, key, _ = self.fs.split_path(path)
                head = self.fs.call_s3("head_object", self.fs.kwargs, Bucket=bucket, Key=key)
                return int(head["ContentLength"])
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        return int(info["size"])

    def modified(self, rel: str) -> float | None:
        try:
            info = self.fs.info(self._path(rel))
        except FileNotFoundError:
            return None
        return _info_mtime(info) if info.get("type") == "file" else None

    def refresh(self, rel: str) -> None:
        # An object's age is its last write, and only a write changes it: S3 copies the object
        # onto itself (metadata replaced, no bytes through this host; objects over 5 GB cannot be
        # copied in one request and keep their age). Other fsspec filesystems are left as they are.
        if not self._s3:
            return
        bucket, key, _ = self.fs.split_path(self._path(rel))
        with contextlib.suppress(OSError, ValueError):
            self.fs.call_s3(
                "copy_object",
                self.fs.kwargs,
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": key},
                MetadataDirective="REPLACE",
            )

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(rel), bytes(data))

    def store_file(self, src: Path) -> tuple[str, int]:
        # Two passes, on purpose: the object's name is its digest, and an object store can neither
        # rename an upload nor abort one portably once streaming has started. So hash first, skip
        # the upload entirely when the blob is already there (re-ingesting a video costs a local
        # read, not a transfer), then upload with the backend's native (multipart) put_file.
        before = os.stat(src)
        if not stat.S_ISREG(before.st_mode):
            raise InvalidInput(
                f"cannot store {src}: not a regular file",
                hint="remote stores read the file twice (hash, then upload); copy it to a file first",
            )
        with open(src, "rb") as source:
            key, size = hash_stream(source)
        if size != before.st_size:
            raise _changed(src)
        rel = blob_rel(key)
        if self.size(rel) == size:
            self.refresh(rel)
            return key, size
        target = self._path(rel)
        self.fs.put_file(os.fspath(src), target)
        after = os.stat(src)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            # The source changed between hashing and upload: the object may not match its name.
            # Remove it rather than leave a blob that fails verification (best effort: mtime has
            # finite resolution, and a concurrent identical upload would be removed too).
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(target)
            raise _changed(src)
        return key, size

    def read_bytes(self, rel: str, size_hint: int | None = None) -> bytes:
        path = self._path(rel)
        if self._s3 and size_hint is not None and size_hint <= self.fs.default_block_size:
            # s3fs HEADs every object before a GET only to decide whether to download it in
            # parallel ranges; for a blob known to be small (a JPEG frame) that is a wasted round trip.
            return cast(bytes, self.fs.cat_file(path, max_concurrency=1))
        return cast(bytes, self.fs.cat_file(path))

    def open_read(self, rel: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._path(rel), "rb"))

    def delete(self, rel: str) -> None:
        # Object stores delete missing keys silently; ask first so absence is NotFound everywhere.
        if self.size(rel) is None:
            raise FileNotFoundError(rel)
        self.fs.rm_file(self._path(rel))

    def iter_rels(self) -> Iterator[str]:
        # One flat, paginated listing of sha256/ (no per-directory round trips). It is held in
        # memory: ~100 bytes per blob, i.e. ~100 MB for a million blobs. Temporaries do not exist
        # remotely; an upload cut short stays an invisible incomplete multipart upload, which a
        # bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims.
        for rel, _, _ in self.iter_stats():
            yield rel

    def iter_stats(self) -> Iterator[tuple[str, int, float | None]]:
        base = self._path(BLOB_DIR)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        prefix = base + "/"
        for path in sorted(found):
            if path.startswith(prefix):
                info = found[path]
                yield f"{BLOB_DIR}/{path[len(prefix) :]}", int(info.get("size") or 0), _info_mtime(info)

    def local_file(self, rel: str) -> Path | None:
        return None

    def purge_temporaries(self, older_than: float, delete: bool = True) -> int:
        return 0


def _info_mtime(info: dict[str, Any]) -> float | None:
    """The modification time in an fsspec info dict; filesystems name it differently (or omit it)."""
    for name in ("LastModified", "mtime", "last_modified", "modified", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value).timestamp()
    return None
