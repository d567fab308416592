"""The index file's format: a header line, then the FAISS payload.

The header records the database's uuid and *generation* and a SHA-256 of the
payload, so a stale, foreign or corrupt file is detected before FAISS ever
parses it. The checksum is no defence against a forger, who recomputes it: the
rows themselves are checked against the digest the store keeps
(:mod:`speakerdb.storage._digest`), and every size in the payload against the
file's length (:mod:`speakerdb.storage._indexpayload`), before FAISS allocates
anything. Nothing here imports numpy or FAISS, so ``speakerdb info`` can tell
the file's state quickly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import DatabaseError
from ._indexpayload import PayloadError, content_digest, walk

__all__ = [
    "HEADER_SIZE",
    "STATE_CHECKS_UP_TO",
    "IndexFile",
    "IndexFileError",
    "file_state",
    "header_line",
    "index_path_for",
    "open_checked",
    "read_header",
    "refuse_link",
]

_MAGIC = b"SPEAKERDB-INDEX 1\n"
# Bytes reserved after the magic for the JSON header line (padded with spaces).
_HEADER_SLOT = 512
_BLOCK = 1 << 20
#: Largest index file whose checksum :func:`file_state` verifies (about 120,000 512-d templates).
STATE_CHECKS_UP_TO = 256 << 20
#: Bytes before the payload: the magic, and the slot for the JSON header line.
HEADER_SIZE = len(_MAGIC) + _HEADER_SLOT


def index_path_for(db_path: Path) -> Path:
    """Where the index of the database at ``db_path`` lives: beside it."""
    return db_path.with_name(db_path.name + ".faiss")


class IndexFileError(Exception):
    """The index file is missing, corrupt or from another database; it gets rebuilt."""


@dataclass(frozen=True, slots=True)
class IndexFile:
    """What an index file's header says about it (``kind``: ``flat`` or ``ivf``)."""

    db_uuid: str
    generation: int
    dim: int
    count: int
    kind: str = "flat"


def file_state(path: Path, generation: int, digest: str | None = None) -> str:
    """The state of the index file at ``path``, in words, for a database at ``generation``
    whose templates have ``digest`` (``None``: the database has none recorded).

    The checksum and the rows are verified for files up to :data:`STATE_CHECKS_UP_TO`
    bytes; a larger file (hundreds of thousands of speakers) is checked when it is
    loaded, so that ``speakerdb info`` does not read gigabytes.
    """
    verify = _size(path) <= STATE_CHECKS_UP_TO
    try:
        header = read_header(path, verify=False)
        if header.generation != generation:
            return f"stale (generation {header.generation}, database {generation}); will be rebuilt"
        if digest is None and generation:
            return "unverified (the database records no digest of its templates); will be rebuilt"
        if verify:
            header = read_header(path, digest=digest)
    except IndexFileError as exc:
        return f"will be rebuilt ({exc})" if generation else "empty"
    kind = ", IVF" if header.kind == "ivf" else ""
    return f"up to date ({header.count} speakers{kind})"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # missing: read_header says so


def read_header(path: Path, *, verify: bool = True, digest: str | None = None) -> IndexFile:
    """The header of an index file, without loading FAISS; with ``verify``, once the
    payload's checksum and layout (and its rows' ``digest``, if given) were checked."""
    if verify:
        with open_checked(path, digest) as (header, _):
            return header
    try:
        with _open_file(path) as fh:
            return _parse_header(path, fh)[0]
    except FileNotFoundError:
        raise IndexFileError(f"{path}: missing") from None
    except OSError as exc:
        raise IndexFileError(f"{path}: unreadable ({exc.strerror})") from exc


@contextmanager
def open_checked(path: Path, digest: str | None = None) -> Iterator[tuple[IndexFile, BinaryIO]]:
    """The file's header and the file, at its payload, once the payload's SHA-256
    matched, its sizes were found consistent, and (if ``digest`` is given) its rows
    give that digest: only then may FAISS parse it.

    The payload is hashed in blocks, so checking a large index holds no copy of it.
    """
    try:
        fh = _open_file(path)
    except FileNotFoundError:
        raise IndexFileError(f"{path}: missing") from None
    except OSError as exc:
        raise IndexFileError(f"{path}: unreadable ({exc.strerror})") from exc
    with fh:
        try:
            header, checksum, start = _parse_header(path, fh)
            actual = hashlib.sha256()
            for block in iter(lambda: fh.read(_BLOCK), b""):
                actual.update(block)
        except OSError as exc:
            raise IndexFileError(f"{path}: unreadable ({exc.strerror})") from exc
        if actual.hexdigest() != checksum:
            raise IndexFileError(f"{path}: checksum mismatch (truncated or corrupt)")
        _check_rows(path, fh, header, start, digest)
        fh.seek(start)
        yield header, fh


def _check_rows(
    path: Path, fh: BinaryIO, header: IndexFile, start: int, digest: str | None
) -> None:
    """Raise IndexFileError unless the payload's layout holds the header's rows, and
    (with ``digest``) they are the templates the database's digest describes."""
    try:
        end = fh.seek(0, os.SEEK_END)
        kind, segments = walk(fh, start, end, header.dim, header.count)
        if kind != header.kind:
            raise PayloadError(f"a {kind} index under a {header.kind} header")
        if digest is not None and content_digest(fh, segments, header.dim) != digest:
            raise IndexFileError(
                f"{path}: its vectors are not the database's templates (digest mismatch)"
            )
    except PayloadError as exc:
        raise IndexFileError(f"{path}: malformed index ({exc})") from exc
    except OSError as exc:
        raise IndexFileError(f"{path}: unreadable ({exc.strerror})") from exc


def _parse_header(path: Path, fh: BinaryIO) -> tuple[IndexFile, str, int]:
    head = fh.read(len(_MAGIC) + _HEADER_SLOT)
    if not head.startswith(_MAGIC):
        raise IndexFileError(f"{path}: not a speakerdb index file")
    line, newline, _ = head[len(_MAGIC) :].partition(b"\n")
    if not newline:
        raise IndexFileError(f"{path}: corrupt header")
    try:
        meta = json.loads(line)
        header = IndexFile(
            str(meta["db_uuid"]),
            int(meta["generation"]),
            int(meta["dim"]),
            int(meta["count"]),
            str(meta.get("kind", "flat")),
        )
        digest = str(meta["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFileError(f"{path}: corrupt header") from exc
    start = len(_MAGIC) + len(line) + 1
    fh.seek(start)
    return header, digest, start


def header_line(meta: dict[str, object]) -> bytes:
    """The magic and the JSON header, padded to fill the slot reserved for them."""
    line = json.dumps(meta).encode()
    if len(line) >= _HEADER_SLOT:
        raise ValueError(f"index header too long: {len(line)} bytes")
    return _MAGIC + line.ljust(_HEADER_SLOT - 1) + b"\n"


def refuse_link(path: Path, exc: OSError) -> None:
    """Raise DatabaseError when ``exc`` came from opening ``path`` with O_NOFOLLOW
    while it is a symbolic link, which may point anywhere another user chose."""
    import shlex  # only for this message: not on info's path

    if exc.errno == errno.ELOOP or path.is_symlink():
        raise DatabaseError(
            f"{path} is a symbolic link, which speakerdb does not follow; delete it "
            f"(`rm {shlex.quote(str(path))}`): speakerdb makes the file again"
        ) from exc


def _open_file(path: Path) -> BinaryIO:
    """``path`` opened to read, refusing a symbolic link (DatabaseError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        refuse_link(path, exc)
        raise
    return os.fdopen(fd, "rb")
