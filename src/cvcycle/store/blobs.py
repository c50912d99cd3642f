"""The content-addressed blob store: immutable bytes named by their sha256, on any fsspec URL.

This module owns the public contract every other package relies on: keys are lowercase hex sha256
digests, a blob is written at most once and never changes, writes are atomic, reads check the size
the caller recorded, and every failure is a :mod:`cvcycle.errors` error naming the key. How bytes
reach storage is delegated to :mod:`cvcycle.store.backends` (``os`` for local paths, fsspec for the
rest), so this class is the single code path behind the public API.

Layout under the store root::

    sha256/<key[:2]>/<key[2:4]>/<key>   the blobs
    tmp/<pid>-<uuid>                     local writes in flight (never listed; purge_temporaries)
"""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cvcycle.errors import CorruptBlob, InvalidInput, NotFound
from cvcycle.settings import Settings, get_settings
from cvcycle.store.backends import (
    Backend,
    FsspecBackend,
    LocalBackend,
    install,
    new_tmp_name,
    open_exclusive,
    purge_dir,
    unlink_quietly,
)
from cvcycle.store.layout import TMP_DIR, blob_rel, check_key, check_size, hash_stream, key_of_rel

#: How long a temporary must be left untouched before purge_temporaries treats its writer as dead.
#: A day is far longer than any single write, so a slow live writer is never robbed of its file.
DEFAULT_TMP_MAX_AGE = 24 * 3600.0

_HINT_SCHEMES = "use a local path, file:///abs/path, s3://bucket/prefix or another fsspec URL"


@dataclass(frozen=True)
class BlobRef:
    """What the database records about a blob: its key and its size in bytes."""

    key: str  # lowercase hex sha256 of the bytes
    size: int


class BlobStore:
    """Immutable, content-addressed blobs under one root URL.

    Create it with :meth:`from_url` (or :func:`open_store` for the configured one). Safe to share
    between threads; several processes may write to the same root concurrently, since identical
    keys mean identical bytes and every write is atomic.
    """

    url: str

    def __init__(self, url: str, backend: Backend, cache_dir: Path | None = None) -> None:
        self.url = url
        self.cache_dir = cache_dir
        self._backend = backend

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, cache_dir: Path | None = None, **storage_options: Any) -> BlobStore:
        """Open the store at ``url``: a plain path, ``file://``, or any fsspec URL (``s3://b/p``).

        ``cache_dir`` is the local read cache used by :meth:`local_path` for remote stores.
        ``storage_options`` go to the fsspec filesystem (e.g. ``client_kwargs``, ``key``,
        ``secret`` for s3fs); local stores take none. Nothing is created until the first write.
        """
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput(f"invalid blob store URL {url!r}", hint=_HINT_SCHEMES)
        cache = Path(cache_dir).expanduser() if cache_dir is not None else None
        root = _local_root(url)
        if root is not None:
            if storage_options:
                raise InvalidInput(
                    f"storage options {sorted(storage_options)} do not apply to the local store {url!r}",
                    hint="storage options configure remote (fsspec) stores such as s3://",
                )
            root = root.expanduser().resolve()
            return cls(root.as_uri(), LocalBackend(root), cache)
        scheme, _, rest = url.partition("://")
        # A listing cache would make exists()/open() trust a stale directory listing after
        # iter_keys, missing blobs other processes wrote since; every lookup must ask the server.
        options = {"use_listings_cache": False, **storage_options}
        try:
            import fsspec.core  # deferred: local stores never pay for importing fsspec

            fs, path = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise InvalidInput(
                f"cannot open blob store {url!r}: {exc}",
                hint="install the filesystem driver, for S3: pip install 'cvcycle[s3]' (s3fs)",
            ) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"cannot open blob store {url!r}: {exc}", hint=_HINT_SCHEMES) from exc
        return cls(f"{scheme}://{rest.rstrip('/')}", FsspecBackend(fs, path), cache)

    # -- writes -------------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data``; a no-op (nothing rewritten) if the blob is already there.

        Atomic against a killed writer: readers see the whole blob or no blob. Local writes are not
        fsynced (that would cost milliseconds per JPEG); should a power loss leave a short file at
        a final key, the next put of the same bytes sees the wrong size and rewrites it.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"put_bytes takes bytes, not {type(data).__name__}")
        key = hashlib.sha256(data).hexdigest()
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        rel = blob_rel(key)
        if self._backend.size(rel) != size:
            self._backend.write_bytes(rel, data)
        return BlobRef(key, size)

    def put_file(self, path: Path) -> BlobRef:
        """Store the file at ``path``, streaming it in chunks; a no-op if the blob is already there."""
        path = Path(path)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise InvalidInput(f"cannot store {path}: no such file") from None
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"cannot store {path}: it is a directory")
        key, size = self._backend.store_file(path)
        return BlobRef(key, size)

    def put_many(self, items: Iterable[bytes], max_workers: int | None = None) -> list[BlobRef]:
        """Store many blobs (e.g. the JPEG frames of a video) concurrently; refs in input order.

        Threads pay off because hashlib and file/network I/O release the GIL. At most a few blobs
        per worker are in flight, so a generator of frames is consumed lazily, not all at once.
        On error the first exception propagates; blobs already written stay (they are valid and
        a retry will skip them).
        """
        workers = max_workers or self._backend.write_concurrency
        if workers <= 1:
            return [self.put_bytes(data) for data in items]
        refs: list[BlobRef] = []
        pending: deque[Future[BlobRef]] = deque()
        window = 4 * workers
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvcycle-store") as pool:
            try:
                for data in items:
                    pending.append(pool.submit(self.put_bytes, data))
                    if len(pending) >= window:
                        refs.append(pending.popleft().result())
                while pending:
                    refs.append(pending.popleft().result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return refs

    def delete(self, key: str) -> None:
        """Remove a blob (garbage collection only: callers must know nothing references it)."""
        rel = blob_rel(check_key(key))
        try:
            self._backend.delete(rel)
        except FileNotFoundError:
            raise self._not_found(key) from None
        if self._backend.local_file(rel) is None and self.cache_dir is not None:
            # Drop this host's cached copy too, so local_path no longer serves a collected blob.
            unlink_quietly(self.cache_dir / rel)

    def purge_temporaries(self, older_than: float = DEFAULT_TMP_MAX_AGE) -> int:
        """Delete leftovers of killed writers (and killed cache fetches); return how many.

        Leftovers are harmless (never listed, never read) but take space. Only files untouched for
        ``older_than`` seconds are removed, so writes in flight are left alone.
        """
        removed = self._backend.purge_temporaries(older_than)
        if self.cache_dir is not None:
            removed += purge_dir(self.cache_dir / TMP_DIR, older_than)
        return removed

    # -- reads --------------------------------------------------------------------------------------

    def get_bytes(self, key: str, size: int | None = None) -> bytes:
        """The blob's bytes. NotFound if absent; CorruptBlob if ``size`` is given and differs."""
        rel = blob_rel(check_key(key))
        check_size(size)
        try:
            data = self._backend.read_bytes(rel, size)
        except FileNotFoundError:
            raise self._not_found(key) from None
        if size is not None and len(data) != size:
            raise _size_mismatch(key, size, len(data))
        return data

    def verify(self, key: str, size: int | None = None) -> None:
        """Re-hash the stored bytes; CorruptBlob if the digest (or the given size) does not match."""
        check_size(size)
        with self.open(key) as stream:
            digest, got = hash_stream(stream)
        if size is not None and got != size:
            raise _size_mismatch(key, size, got)
        if digest != key:
            raise CorruptBlob(
                f"blob {key} is corrupt: its {got} bytes hash to {digest}",
                hint="restore the blob from a backup or re-ingest its source",
            )

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key`` (its content is not checked; see verify)."""
        return self._backend.size(blob_rel(check_key(key))) is not None

    def open(self, key: str) -> BinaryIO:
        """A binary reader over the blob, for streaming large ones. NotFound if absent."""
        rel = blob_rel(check_key(key))
        try:
            return self._backend.open_read(rel)
        except FileNotFoundError:
            raise self._not_found(key) from None

    def local_path(self, key: str, size: int | None = None) -> Path:
        """A local file holding the blob, for tools that need a path (decoders, trainers).

        Local stores return the stored file itself: treat it as read-only. Remote stores return a
        copy in the read cache, fetched once (to a temporary, digest- and size-checked, then renamed
        into place), so concurrent callers never see a partial file.
        """
        rel = blob_rel(check_key(key))
        check_size(size)
        direct = self._backend.local_file(rel)
        if direct is not None:
            got = self._backend.size(rel)
            if got is None:
                raise self._not_found(key)
            if size is not None and got != size:
                raise _size_mismatch(key, size, got)
            return direct
        if self.cache_dir is None:
            raise InvalidInput(
                f"blob store {self.url} has no local read cache",
                hint="pass cache_dir= to BlobStore.from_url, or use open_store() (CVCYCLE_CACHE_DIR)",
            )
        cached = self.cache_dir / rel
        try:
            cached_size = os.stat(cached).st_size
        except FileNotFoundError:
            cached_size = None
        # A cached copy was digest-checked when fetched; a size disagreement means the cache was
        # damaged locally, and the cache is disposable, so fetch again rather than fail.
        if cached_size is not None and (size is None or cached_size == size):
            return cached
        return self._fetch_into_cache(key, rel, cached, size)

    def iter_keys(self) -> Iterator[str]:
        """Every stored key, in sorted order (for garbage collection and audits).

        Only ``sha256/<xx>/<yy>/<key>`` entries are listed. Temporaries under ``tmp/`` (writes in
        flight, or leftovers of writers killed midway) are never listed: they are not blobs yet.
        Remove old leftovers with :meth:`purge_temporaries`.
        """
        for rel in self._backend.iter_rels():
            key = key_of_rel(rel)
            if key is not None:
                yield key

    # -- internals ----------------------------------------------------------------------------------

    def _fetch_into_cache(self, key: str, rel: str, target: Path, size: int | None) -> Path:
        assert self.cache_dir is not None
        tmp = new_tmp_name(os.path.join(self.cache_dir, TMP_DIR))
        try:
            try:
                source = self._backend.open_read(rel)
            except FileNotFoundError:
                raise self._not_found(key) from None
            with source, open_exclusive(tmp) as sink:
                digest, got = hash_stream(source, sink)
            if size is not None and got != size:
                raise _size_mismatch(key, size, got)
            if digest != key:
                raise CorruptBlob(
                    f"blob {key} in {self.url} is corrupt: its {got} bytes hash to {digest}",
                    hint="restore the blob from a backup or re-ingest its source",
                )
            install(tmp, os.fspath(target))
        except BaseException:
            unlink_quietly(tmp)
            raise
        return target

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"blob {key} not found in {self.url}")


def _size_mismatch(key: str, expected: int, got: int) -> CorruptBlob:
    return CorruptBlob(
        f"blob {key} is corrupt: expected {expected} bytes, got {got}",
        hint="restore the blob from a backup or re-ingest its source; `verify` re-hashes it",
    )


def _local_root(url: str) -> Path | None:
    """The directory a plain path or ``file://`` URL names, or None for a remote URL."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return Path(url)
    if scheme.lower() not in ("file", "local"):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(
            f"invalid blob store URL {url!r}: file URLs cannot name host {parts.netloc!r}",
            hint="write an absolute path with three slashes: file:///srv/cvcycle/store",
        )
    # url2pathname undoes the percent-encoding Path.as_uri() applies (spaces, non-ASCII).
    return Path(urllib.request.url2pathname(parts.path))


def open_store(settings: Settings | None = None) -> BlobStore:
    """The configured blob store: ``settings.blob_store_url`` with ``settings.read_cache_dir``."""
    settings = settings or get_settings()
    return BlobStore.from_url(settings.blob_store_url, cache_dir=settings.read_cache_dir)
