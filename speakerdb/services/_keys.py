"""The keys of the HTTP service (``speakerdb serve``): created, listed, revoked, checked.

A key is a random secret shown once, when it is created; the storage keeps only its
SHA-256 (the secrets are 256 random bits, so a fast hash is as good as a slow one:
there is nothing to guess). A request names no key: the hash of the secret it sends
finds the key, with its name and scope. ``query`` keys may identify, verify and
list; ``admin`` keys may do everything. A ``query`` key may be bound to a group: every
identify, verify and segments request with it is confined to that group.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime, timezone

from .._names import clean_group
from ..errors import InputError
from ..storage._protocol import Storage
from ..types import ApiKey

__all__ = ["SCOPES", "KeyRing", "digest_of"]

log = logging.getLogger(__name__)

#: Every scope, the weakest first.
SCOPES = ("query", "admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A recognisable prefix, so that a leaked key is easy to find in logs and repositories.
_PREFIX = "sdb_"


def digest_of(secret: str) -> str:
    """The SHA-256 hex digest under which a key's secret is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class KeyRing:
    """The service keys of one database. Each method runs its own transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def create(self, name: str, scope: str, *, group: str | None = None) -> tuple[ApiKey, str]:
        """Create key ``name`` with ``scope``; return it and its secret, which is not
        stored and cannot be shown again. With ``group`` (an existing group; only for a
        ``query`` key) the key is bound to it: see :mod:`speakerdb.server._auth`."""
        _check_name(name)
        if scope not in SCOPES:
            raise InputError(f"a key's scope is 'query' or 'admin', got {scope!r}")
        if group is not None:
            group = clean_group(group)
            if scope != "query":
                raise InputError(
                    "only a query key is bound to a group: an admin key may change the "
                    "groups themselves; create it with --scope query"
                )
        key = ApiKey(name, scope, datetime.now(timezone.utc), group)
        secret = _PREFIX + secrets.token_urlsafe(32)
        with self._storage.change() as change:
            if group is not None:
                change.group_members(group)  # GroupNotFound names the fix
            change.add_api_key(key, digest_of(secret))
        log.info("created service key %r (%s)", name, scope)
        return key, secret

    def list(self) -> list[ApiKey]:
        """Every key, by name (without secrets: none is stored)."""
        with self._storage.read() as snapshot:
            return snapshot.api_keys()

    def revoke(self, name: str) -> ApiKey:
        """Delete key ``name``: requests with it are refused from then on."""
        with self._storage.change() as change:
            key = change.revoke_api_key(name)
        log.info("revoked service key %r", name)
        return key

    def check(self, secret: str) -> ApiKey | None:
        """The key whose secret is ``secret``, or ``None``."""
        if not secret.startswith(_PREFIX):
            return None
        with self._storage.read() as snapshot:
            return snapshot.api_key(digest_of(secret))


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"a key name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit, got {name!r}"
        )
