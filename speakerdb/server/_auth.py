"""Who is asking: the key a request sends (``Authorization: Bearer KEY``, or a
stream's first frame) and whether its scope allows the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Forbidden, Unauthorized
from ..services._keys import SCOPES

if TYPE_CHECKING:
    from .._facade import SpeakerDB
    from ..types import ApiKey

__all__ = [
    "HEADER",
    "STREAM",
    "bearer_secret",
    "check_key",
    "confined_group",
    "header_secret",
    "may_see",
]

#: Where a request sends its key: an HTTP request in a header, a stream in its first
#: frame too (browsers cannot set the header).
HEADER = "send `Authorization: Bearer KEY`"
STREAM = 'send `"key": KEY` in the first frame, or an `Authorization: Bearer KEY` header'


def bearer_secret(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def header_secret(authorization: str | None) -> str | None:
    """The key of an ``Authorization`` header, ``None`` without one; :class:`Unauthorized`
    for a header that is not ``Bearer KEY`` (a key sent bare, or as Basic auth), which
    would otherwise be told it sent no key at all."""
    secret = bearer_secret(authorization)
    if not authorization or secret is not None:
        return secret
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        got = "no key after Bearer"
    else:
        got = f"the scheme {scheme[:16]!r}" if rest else "a bare value without `Bearer `"
    raise Unauthorized(
        "the Authorization header must be `Bearer KEY` (the word Bearer, a space, then the "
        f"key); it has {got}"
    )


def check_key(db: SpeakerDB, secret: str | None, scope: str, send: str = HEADER) -> ApiKey:
    """The key whose secret is ``secret`` if its scope covers ``scope``;
    :class:`Unauthorized` without a known key (telling the client to ``send`` one),
    :class:`Forbidden` for a weaker scope."""
    if not secret:
        raise Unauthorized(
            f"this request needs a key: {send} (the server's operator creates one on the "
            "server: `speakerdb key create NAME --scope query|admin`)"
        )
    key = db.keys.check(secret)
    if key is None:
        raise Unauthorized(
            "the key is not one of this database's (revoked or mistyped): send a key the "
            "server's operator gave you (`speakerdb key list` on the server shows them)"
        )
    if SCOPES.index(key.scope) < SCOPES.index(scope):
        raise Forbidden(
            f"key {key.name!r} has scope {key.scope!r}; this needs an {scope} key: send "
            "one (the server's operator makes keys, on the server)"
        )
    return key


def confined_group(key: ApiKey, asked: str | None) -> str | None:
    """The group a request of ``key`` that names ``asked`` (or none) is confined to: a key
    bound to a group confines every query to it, so a door cannot leave its group out;
    one that names another group is :class:`Forbidden`."""
    if key.group is None:
        return asked
    if asked is not None and asked != key.group:
        raise Forbidden(
            f"key {key.name!r} is bound to group {key.group!r} and may not query group "
            f"{asked!r}; leave group out, or use a key of that group"
        )
    return key.group


def may_see(key: ApiKey, groups: tuple[str, ...]) -> bool:
    """Whether ``key`` may see a speaker in ``groups``: a key bound to a group sees only
    its members."""
    return key.group is None or key.group in groups
