"""The one error hierarchy of cvcycle.

Every error carries a message a user can act on and an optional hint. The shells map them: the CLI
to exit code 2 and one line, the API to an HTTP status and ``{"error": ..., "hint": ...}``.
"""

from __future__ import annotations


class CvcycleError(Exception):
    """Base of every error cvcycle raises on purpose."""

    http_status = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(CvcycleError):
    """The user gave something malformed: a file, a reference, an option."""

    http_status = 422


class NotFound(CvcycleError):
    """A named thing (dataset, version, slice, label, blob) does not exist."""

    http_status = 404


class TooLarge(CvcycleError):
    """An upload is bigger than the configured limit."""

    http_status = 413


class Conflict(CvcycleError):
    """A write lost a race or would overwrite newer work (stale revision, existing name)."""

    http_status = 409


class InvalidMedia(InvalidInput):
    """A file is not decodable media: corrupt, truncated or of an unknown kind."""


class ServerUnavailable(CvcycleError):
    """An inference server cannot be reached, refused a request, or did not make a version ready."""

    http_status = 503


class CorruptBlob(CvcycleError):
    """A stored blob (or an artefact in it) does not match its recorded size, digest or format.

    A server-side fault, not a bad request: no input causes it and no retry with other input
    helps, so the API answers 500, with the usual ``{"error", "hint"}`` body naming the blob and
    no traceback. The damaged bytes are never served. The hint names ``cvcycle store verify``.
    """

    http_status = 500


class NotInitialised(CvcycleError):
    """The home or the database schema is missing or behind; ``cvcycle init`` fixes it."""

    http_status = 503
