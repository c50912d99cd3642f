"""Where a blob lives under a store root, what a valid key is, and how bytes are hashed.

This module owns the on-store layout (``sha256/<key[:2]>/<key[2:4]>/<key>``, temporaries under
``tmp/``) so that the backends and the public :class:`~cvcycle.store.blobs.BlobStore` agree on it
without importing each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cvcycle.errors import InvalidInput

#: Read/write granularity for streaming. 1 MiB keeps syscalls and Python overhead negligible next to
#: the I/O while holding memory flat for multi-GB videos.
CHUNK_SIZE = 1 << 20

#: Directory (prefix) holding the blobs. The algorithm is part of the path so a future digest can
#: live next to this one without a migration.
BLOB_DIR = "sha256"

#: Directory for in-flight local writes. It sits inside the store root so the final rename never
#: crosses a filesystem boundary (``os.replace`` is only atomic within one filesystem).
TMP_DIR = "tmp"

_KEY_RE = re.compile(r"[0-9a-f]{64}")


def is_key(candidate: str) -> bool:
    """True if ``candidate`` is a lowercase hex sha256 digest."""
    return _KEY_RE.fullmatch(candidate) is not None


def check_key(key: str) -> str:
    """Return ``key`` unchanged or raise :class:`InvalidInput` naming it."""
    if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
        raise InvalidInput(
            f"invalid blob key {key!r:.100}: expected 64 lowercase hex characters",
            hint="a blob key is the lowercase hex sha256 digest of the blob's bytes",
        )
    return key


def check_size(size: int | None) -> None:
    """Reject a negative or non-integer expected size early, before any I/O."""
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"invalid blob size {size!r}: expected a non-negative integer or None")


def blob_rel(key: str) -> str:
    """The path of blob ``key`` relative to the store root (``/``-separated, for every backend).

    Two levels of 256-way fan-out keep directories small (a million blobs is ~15 files per leaf
    directory) on filesystems that slow down with huge directories.
    """
    return f"{BLOB_DIR}/{key[:2]}/{key[2:4]}/{key}"


def key_of_rel(rel: str) -> str | None:
    """The key a relative path ``sha256/ab/cd/<key>`` stores, or None if it is not a blob path.

    Anything else found under the blob directory (editor droppings, ``.DS_Store``, a blob moved to
    the wrong fan-out directory) is not a blob: listing it would let GC or ``verify`` act on it.
    """
    parts = rel.split("/")
    if len(parts) != 4 or parts[0] != BLOB_DIR:
        return None
    key = parts[3]
    if not is_key(key) or parts[1] != key[:2] or parts[2] != key[2:4]:
        return None
    return key


def hash_stream(stream: BinaryIO, sink: BinaryIO | None = None) -> tuple[str, int]:
    """Hash ``stream`` to its end in chunks, copying every chunk to ``sink`` if given.

    Returns the hex digest and the byte count. Hashing while copying reads the source once, which
    matters for multi-GB videos and is the only option for non-seekable sources.
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(stream):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def hash_file(path: Path) -> str:
    """The sha256 of the file at ``path`` (the key it has, or would have, in the store)."""
    with open(path, "rb") as handle:
        return hash_stream(handle)[0]


def iter_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Yield ``stream`` in chunks of at most :data:`CHUNK_SIZE` until EOF."""
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk
