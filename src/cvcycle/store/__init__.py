"""cvcycle.store: the content-addressed blob store (media files, JPEG frames, model artefacts).

Owns where bytes live and that they stay what they were: blobs are named by their sha256, written
atomically, never modified, and checked against their digest on every read. The metadata database
records :class:`BlobRef` (key and size); this package never touches the database.

Use :func:`open_store` for the configured store, or :meth:`BlobStore.from_url` for an explicit one.
"""

from cvcycle.store.blobs import BlobInfo, BlobRef, BlobStore, open_store

__all__ = ["BlobInfo", "BlobRef", "BlobStore", "open_store"]
