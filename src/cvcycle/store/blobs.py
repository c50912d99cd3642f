"""The content-addressed blob store: immutable bytes named by their sha256, on any fsspec URL.

This module owns the public contract every other package relies on: keys are lowercase hex sha256
digests, a blob is written at most once and never changes, writes are atomic, every read checks the
bytes against their digest (and the size the caller recorded), and every failure is a
:mod:`cvcycle.errors` error naming the key. How bytes reach storage is delegated to
:mod:`cvcycle.store.backends` (``os`` for local paths, fsspec for the rest), so this class is the
single code path behind the public API.

What each read verifies, and when:

- :meth:`BlobStore.get_bytes` hashes the bytes it returns (sha256 runs at roughly 0.5-2 GB/s
  on one core: tens of microseconds for a 20 KB JPEG frame) and raises
  :class:`~cvcycle.errors.CorruptBlob` instead of returning damaged bytes.
- :meth:`BlobStore.open` hashes while the caller reads; the read that reaches the end raises
  CorruptBlob when the digest differs. A caller that stops early or seeks gets no verdict: it has
  not read the whole blob (the registry's resumable copy seeks, and checks the copy itself).
- :meth:`BlobStore.local_path` hands out a file: it hashes that file before handing it out, once
  per file state (inode, size, mtime, ctime) per store object, so a server decoding frames of a
  video hashes the video on the first request only (a file written in the last two seconds is
  hashed every time). Any write to the file changes its ctime and forces a new check; what the
  caller reads after the path was handed out is not re-checked.
- :meth:`BlobStore.verify` re-hashes on demand; ``cvcycle store verify`` runs it over the store.

Layout under the store root::

    sha256/<key[:2]>/<key[2:4]>/<key>   the blobs
    tmp/<pid>-<uuid>                     local writes in flight (never listed; purge_temporaries)
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

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
    stat_file,
    unlink_quietly,
)
from cvcycle.store.layout import (
    CHUNK_SIZE,
    TMP_DIR,
    blob_rel,
    check_key,
    check_size,
    hash_stream,
    key_of_rel,
)

#: How long a temporary must be left untouched before purge_temporaries treats its writer as dead.
#: A day is far longer than any single write, so a slow live writer is never robbed of its file.
DEFAULT_TMP_MAX_AGE = 24 * 3600.0

_HINT_SCHEMES = "use a local path, file:///abs/path, s3://bucket/prefix or another fsspec URL"

#: The one hint of every damaged-blob error: it names the command that finds all of them.
CORRUPT_HINT = (
    "`cvcycle store verify` lists every damaged or missing blob; restore them from a backup of the store"
)

#: How many verified file states local_path remembers per store (about 200 bytes each).
_VERIFIED_FILES = 65_536

#: A file changed less than this long ago is not remembered as verified: file times come from a
#: coarse clock (a few milliseconds per tick), so a second write within one tick would leave the
#: remembered state unchanged (git calls such index entries "racily clean").
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class BlobRef:
    """What the database records about a blob: its key and its size in bytes."""

    key: str  # lowercase hex sha256 of the bytes
    size: int


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as listed: key, size and when it was last written (None where unknown)."""

    key: str
    size: int
    modified: float | None  # epoch seconds


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
        # Files local_path has hashed, by path: the (inode, size, mtime, ctime) they had then.
        self._verified: OrderedDict[str, tuple[int, int, int, int]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    @property
    def concurrency(self) -> int:
        """Threads worth running against this store at once (put_many, bulk verification)."""
        return self._backend.write_concurrency

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
        a final key, the next put of the same bytes sees the wrong size and rewrites it. A put that
        finds its blob already there refreshes the blob's age (see ``Backend.refresh``), so garbage
        collection's grace period protects it until the caller has recorded it.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"put_bytes takes bytes, not {type(data).__name__}")
        key = hashlib.sha256(data).hexdigest()
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        rel = blob_rel(key)
        if self._backend.size(rel) != size:
            self._backend.write_bytes(rel, data)
        else:
            self._backend.refresh(rel)
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

    def purge_temporaries(self, older_than: float = DEFAULT_TMP_MAX_AGE, *, delete: bool = True) -> int:
        """Delete leftovers of killed writers (and killed cache fetches); return how many.

        Leftovers are harmless (never listed, never read) but take space. Only files untouched for
        ``older_than`` seconds are removed, so writes in flight are left alone. With
        ``delete=False`` they are counted and kept (a dry run).
        """
        removed = self._backend.purge_temporaries(older_than, delete)
        if self.cache_dir is not None:
            removed += purge_dir(self.cache_dir / TMP_DIR, older_than, delete)
        return removed

    # -- reads --------------------------------------------------------------------------------------

    def get_bytes(self, key: str, size: int | None = None) -> bytes:
        """The blob's bytes, digest-checked. NotFound if absent; CorruptBlob if damaged.

        ``size``, the size the caller recorded, is checked too (and lets S3 skip a HEAD).
        """
        rel = blob_rel(check_key(key))
        check_size(size)
        try:
            data = self._backend.read_bytes(rel, size)
        except FileNotFoundError:
            raise self._not_found(key) from None
        if size is not None and len(data) != size:
            raise self._size_mismatch(key, size, len(data))
        digest = hashlib.sha256(data).hexdigest()
        if digest != key:
            raise self._corrupt(key, len(data), digest)
        return data

    def verify(self, key: str, size: int | None = None) -> int:
        """Re-hash the stored bytes and return their count; CorruptBlob if the digest (or the given
        size) does not match, NotFound if absent."""
        check_size(size)
        with self.open(key) as stream:
            _, got = hash_stream(stream)  # the verifying reader raises at the end if damaged
        if size is not None and got != size:
            raise self._size_mismatch(key, size, got)
        return got

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key`` (its content is not checked; see verify)."""
        return self._backend.size(blob_rel(check_key(key))) is not None

    def open(self, key: str) -> BinaryIO:
        """A binary reader over the blob, for streaming large ones. NotFound if absent.

        The reader hashes what it reads: the read that reaches the end raises CorruptBlob if the
        blob is damaged, so a stream consumed to its end is never silently wrong. After a seek the
        reader cannot tell, and says nothing.
        """
        rel = blob_rel(check_key(key))
        try:
            source = self._backend.open_read(rel)
        except FileNotFoundError:
            raise self._not_found(key) from None
        return cast(BinaryIO, _VerifyingReader(source, key, self._corrupt))

    def local_path(self, key: str, size: int | None = None) -> Path:
        """A local file holding the blob, digest-checked, for tools that need a path (decoders).

        Local stores return the stored file itself: treat it as read-only. Remote stores return a
        copy in the read cache, fetched once (to a temporary, digest- and size-checked, then renamed
        into place), so concurrent callers never see a partial file. The file is hashed before it
        is handed out, once per file state (see the module docstring); a damaged stored file is
        CorruptBlob, a damaged cached copy is fetched again (the cache is disposable).
        """
        rel = blob_rel(check_key(key))
        check_size(size)
        direct = self._backend.local_file(rel)
        if direct is not None:
            st = stat_file(direct)
            if st is None:
                raise self._not_found(key)
            if size is not None and st.st_size != size:
                raise self._size_mismatch(key, size, st.st_size)
            digest = self._file_digest(key, direct, st)
            if digest != key:
                raise self._corrupt(key, st.st_size, digest)
            return direct
        if self.cache_dir is None:
            raise InvalidInput(
                f"blob store {self.url} has no local read cache",
                hint="pass cache_dir= to BlobStore.from_url, or use open_store() (CVCYCLE_CACHE_DIR)",
            )
        cached = self.cache_dir / rel
        st = stat_file(cached)
        # A cached copy that disagrees with its digest or size was damaged locally, and the cache
        # is disposable, so fetch again rather than fail.
        if (
            st is not None
            and (size is None or st.st_size == size)
            and self._file_digest(key, cached, st) == key
        ):
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

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob with its size and age, in key order (what garbage collection needs).

        Sizes and times come with the listing (one paginated listing on object stores).
        """
        for rel, size, modified in self._backend.iter_stats():
            key = key_of_rel(rel)
            if key is not None:
                yield BlobInfo(key, size, modified)

    def modified(self, key: str) -> float | None:
        """When the blob was last written or refreshed (epoch seconds); None if absent or unknown."""
        return self._backend.modified(blob_rel(check_key(key)))

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
                raise self._size_mismatch(key, size, got)
            if digest != key:
                raise self._corrupt(key, got, digest)
            install(tmp, os.fspath(target))
        except BaseException:
            unlink_quietly(tmp)
            raise
        st = stat_file(target)
        if st is not None:
            self._remember(target, st)
        return target

    def _file_digest(self, key: str, path: Path, st: os.stat_result) -> str:
        """The file's sha256: ``key`` without reading it if this state of the file was checked."""
        state = _file_state(st)
        with self._verified_lock:
            if self._verified.get(os.fspath(path)) == state:
                self._verified.move_to_end(os.fspath(path))
                return key
        try:
            with open(path, "rb") as handle:
                digest, _ = hash_stream(handle)
        except FileNotFoundError:
            raise self._not_found(key) from None
        if digest == key:
            self._remember(path, st)
        return digest

    def _remember(self, path: Path, st: os.stat_result) -> None:
        if time.time_ns() - st.st_ctime_ns < _RACY_NS:
            return  # a write within the same timestamp tick would leave its state unchanged
        with self._verified_lock:
            self._verified[os.fspath(path)] = _file_state(st)
            self._verified.move_to_end(os.fspath(path))
            while len(self._verified) > _VERIFIED_FILES:
                self._verified.popitem(last=False)

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"blob {key} not found in {self.url}")

    def _corrupt(self, key: str, got: int, digest: str) -> CorruptBlob:
        return CorruptBlob(
            f"blob {key} in {self.url} is corrupt: its {got} bytes hash to {digest}", hint=CORRUPT_HINT
        )

    def _size_mismatch(self, key: str, expected: int, got: int) -> CorruptBlob:
        return CorruptBlob(
            f"blob {key} in {self.url} is corrupt: expected {expected} bytes, got {got}", hint=CORRUPT_HINT
        )


class _VerifyingReader(io.RawIOBase):
    """A blob stream that hashes what is read and raises CorruptBlob on the read that ends it."""

    def __init__(self, source: BinaryIO, key: str, corrupt: Callable[[str, int, str], CorruptBlob]) -> None:
        super().__init__()
        self._source = source
        self._key = key
        self._corrupt = corrupt
        self._digest: Any = hashlib.sha256()  # None once a seek made the verdict impossible
        self._count = 0
        self._failure: CorruptBlob | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._failure is not None:
            raise self._failure
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        n = len(data)
        view[:n] = data
        if self._digest is not None:
            if n:
                self._digest.update(data)
                self._count += n
            elif len(view):
                self._check()
        return n

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(CHUNK_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)

    def _check(self) -> None:
        digest = self._digest.hexdigest()
        self._digest = None  # one verdict per stream
        if digest != self._key:
            self._failure = self._corrupt(self._key, self._count, digest)
            raise self._failure

    def seekable(self) -> bool:
        return bool(self._source.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._source.seek(offset, whence)
        if position != self._count:
            self._digest = None  # bytes were skipped or re-read: the digest cannot tell any more
        return position

    def tell(self) -> int:
        return self._source.tell()

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


def _file_state(st: os.stat_result) -> tuple[int, int, int, int]:
    # ctime is set by the kernel on every write or metadata change and cannot be set back, so a
    # file changed after it was hashed never matches its remembered state.
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


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
