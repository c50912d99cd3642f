"""Restricted API categories, as Triton's ``--http-restricted-api`` and ``--grpc-restricted-protocol``.

A flag value is ``<category>[,<category>...]:<header>=<value>``: a request to an API of a listed
category is answered only when it carries ``header`` with exactly ``value`` (compared with
``hmac.compare_digest``); otherwise HTTP 403 or gRPC PERMISSION_DENIED, with Triton's message.
The categories are Triton's; those naming APIs this server lacks (shared memory, trace, logging)
are accepted and restrict nothing. Each front end looks a category up once per request (a dict
lookup) and checks a header only where that category is restricted.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cvcycle.errors import InvalidInput
from cvcycle.serve.protocol import ProtocolError

#: Triton's API categories.
CATEGORIES = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)

#: The header ``cvcycle up`` and ``cvcycle sync`` use for the model-repository key (Triton's example).
KEY_HEADER = "admin-key"

# gRPC metadata keys are lower-case tokens; HTTP header names compare case-insensitively.
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Restriction:
    """One category's key: the header (lower-case) and the value it must carry."""

    header: str
    value: str

    def check(self, given: str | None) -> None:
        """Return when ``given`` is the key; ProtocolError 403 with Triton's message otherwise."""
        if given is None or not hmac.compare_digest(given.encode(), self.value.encode()):
            raise ProtocolError(f"This API is restricted, expecting header '{self.header}'", 403)


def parse_restricted(values: Sequence[str], flag: str) -> dict[str, Restriction]:
    """Category -> its key, from the values of one flag; InvalidInput naming the flag on a bad one."""
    restrictions: dict[str, Restriction] = {}
    for given in values:
        categories, sep, key = given.partition(":")
        header, eq, value = key.partition("=")
        header = header.strip().lower()
        if not sep or not eq or not value or not _HEADER_NAME.match(header):
            raise InvalidInput(
                f"{flag} {given.split('=', 1)[0]}=...: expected <category>[,<category>...]:<header>=<value>, "
                "e.g. model-repository:admin-key=SECRET"
            )
        for category in (c.strip() for c in categories.split(",")):
            if category not in CATEGORIES:
                raise InvalidInput(
                    f"{flag}: unknown API category {category!r}; the categories are {', '.join(CATEGORIES)}"
                )
            if category in restrictions:
                raise InvalidInput(f"{flag}: category {category!r} is restricted twice")
            restrictions[category] = Restriction(header, value)
    return restrictions
