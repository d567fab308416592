"""The digest of an index's content: which template each speaker id holds.

The store keeps the digest of its templates (the ``index_digest`` setting),
updated in the same transaction as the templates; an index file whose rows do
not give the same digest is not used (:mod:`speakerdb.storage._indexfile`).

The digest is a multiset hash (AdHash, Bellare and Micciancio): the sum,
modulo 2^2048, of one 2048-bit term per ``(id, template bytes)`` row. A sum
does not depend on the rows' order, so a file's rows can be hashed as they come
and a change of one template costs two terms, not a pass over every row. The
modulus is wide because a forger who may choose among many candidate vectors
per row attacks a sum with generalized-birthday and lattice methods, which
are cheap against 256 bits and hopeless against 2048 (Wagner, CRYPTO 2002).

Nothing here imports numpy: ``speakerdb info`` checks the file with it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

__all__ = ["EMPTY", "add", "digest_of", "parse", "remove", "row_term"]

_BYTES = 256
_MODULUS = 1 << (8 * _BYTES)
_ID = struct.Struct("<q")
#: The digest of no rows.
EMPTY = "0" * (2 * _BYTES)


def row_term(speaker_id: int, template: bytes) -> int:
    """One row's term: SHA-256 of the row, stretched to 2048 bits by SHAKE-256."""
    seed = hashlib.sha256(_ID.pack(speaker_id) + template).digest()
    return int.from_bytes(hashlib.shake_256(seed).digest(_BYTES), "little")


def digest_of(rows: Iterable[tuple[int, bytes]]) -> str:
    """The digest of ``rows`` of ``(speaker id, little-endian float32 template bytes)``."""
    total = sum(row_term(i, blob) for i, blob in rows)
    return _text(total)


def add(digest: str, speaker_id: int, template: bytes) -> str:
    """``digest`` with the row ``(speaker_id, template)`` added."""
    return _text(parse(digest) + row_term(speaker_id, template))


def remove(digest: str, speaker_id: int, template: bytes) -> str:
    """``digest`` with the row ``(speaker_id, template)`` taken out."""
    return _text(parse(digest) - row_term(speaker_id, template))


def parse(digest: str) -> int:
    """The number a digest's text holds; ValueError when it is not a digest."""
    if len(digest) != len(EMPTY):
        raise ValueError(f"a digest has {len(EMPTY)} hex digits, not {len(digest)}")
    return int(digest, 16)


def _text(total: int) -> str:
    return f"{total % _MODULUS:0{2 * _BYTES}x}"
