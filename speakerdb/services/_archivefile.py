"""The export archive's file format: one JSON document, compressed, checked, and
optionally encrypted.

A file is a magic line, a header line (JSON), then the body::

    SPEAKERDB-ARCHIVE 1\\n
    {"compressed": "gzip", "size": N, "sha256": "...", "encryption": null | {...}}\\n
    BODY

The body is the gzip-compressed document of :mod:`speakerdb.services._archive`;
``size`` is the document's length and ``sha256`` its digest, checked on reading, so
a truncated or altered file is refused. With a passphrase, the body is encrypted
with AES-256-GCM (``cryptography``) under a key derived by scrypt (``n`` 2^15,
``r`` 8, ``p`` 1) from the passphrase and a random salt, with the header as
associated data: a wrong passphrase and any change to the file fail the same
authentication. A document larger than :data:`MAX_DOCUMENT_BYTES` (or
``SPEAKERDB_MAX_ARCHIVE_BYTES``) is refused before it is decompressed, and
decompression stops at the declared size, so a compression bomb costs nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import secrets
import zlib
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["MAX_DOCUMENT_BYTES", "read_archive", "write_archive"]

MAGIC = b"SPEAKERDB-ARCHIVE 1\n"
#: The largest document read (about 10^5 speakers of 5 clips of 512 floats), unless
#: ``SPEAKERDB_MAX_ARCHIVE_BYTES`` says otherwise.
MAX_DOCUMENT_BYTES = 4 << 30
_MAX_HEADER = 4096
_SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}


def write_archive(path: Path, document: bytes, passphrase: bytes | None) -> None:
    """Write ``document`` to ``path`` (owner-only, through a temporary file and a rename)."""
    body = gzip.compress(document, compresslevel=6, mtime=0)
    header: dict[str, Any] = {
        "compressed": "gzip",
        "size": len(document),
        "sha256": hashlib.sha256(document).hexdigest(),
        "encryption": None,
    }
    if passphrase is not None:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        header["encryption"] = {"cipher": "aes-256-gcm", "kdf": "scrypt", **_SCRYPT}
        header["encryption"] |= {"salt": _b64(salt), "nonce": _b64(nonce)}
        line = _header_line(header)
        body = _cipher(passphrase, salt).encrypt(nonce, body, MAGIC + line)
    else:
        line = _header_line(header)
    _write_private(path, MAGIC + line + body)


def read_archive(path: Path, passphrase: bytes | None) -> bytes:
    """The document in the archive at ``path``; :class:`InputError` with one line
    saying what is wrong (not an archive, truncated, altered, wrong passphrase, too big)."""
    raw = _read(path)
    if not raw.startswith(MAGIC):
        raise InputError(f"{path}: not a speakerdb archive (made by `speakerdb export`)")
    end = raw.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise InputError(f"{path}: the archive's header is damaged or cut off")
    line = raw[len(MAGIC) : end + 1]
    header = _parse_header(path, line)
    body = raw[end + 1 :]
    if header["encryption"] is not None:
        body = _decrypt(path, header["encryption"], passphrase, body, MAGIC + line)
    elif passphrase is not None:
        raise InputError(f"{path}: the archive is not encrypted; leave out the passphrase")
    document = _decompress(path, body, header["size"])
    if hashlib.sha256(document).hexdigest() != header["sha256"]:
        raise InputError(f"{path}: the archive's content does not match its checksum (altered)")
    return document


def max_document_bytes() -> int:
    value = os.environ.get("SPEAKERDB_MAX_ARCHIVE_BYTES")
    return int(value) if value and value.isdigit() else MAX_DOCUMENT_BYTES


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_document_bytes() + _MAX_HEADER + 1024:
            raise InputError(f"{path}: {size} bytes, more than an archive may hold")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory; give the archive's file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc


def _parse_header(path: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
        size, digest = header["size"], header["sha256"]
        encryption = header["encryption"]
        ok = header.get("compressed") == "gzip" and isinstance(digest, str)
        ok = ok and isinstance(size, int) and size >= 0
        ok = ok and (encryption is None or isinstance(encryption, dict))
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InputError(f"{path}: the archive's header is damaged")
    if size > max_document_bytes():
        raise InputError(
            f"{path}: the archive holds {size} bytes, more than the {max_document_bytes()} "
            "allowed (raise SPEAKERDB_MAX_ARCHIVE_BYTES if it is trusted)"
        )
    return dict(header)


def _decompress(path: Path, body: bytes, size: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip
    try:
        document = inflater.decompress(body, size + 1)
    except zlib.error as exc:
        raise InputError(f"{path}: the archive is damaged or altered ({exc})") from exc
    if len(document) != size or not inflater.eof:
        raise InputError(f"{path}: the archive is truncated or altered (wrong size)")
    return document


def _decrypt(
    path: Path, spec: dict[str, Any], passphrase: bytes | None, body: bytes, aad: bytes
) -> bytes:
    from cryptography.exceptions import InvalidTag

    if passphrase is None:
        raise InputError(
            f"{path}: the archive is encrypted; give the --passphrase-file it was exported "
            "with (passphrase= in Python)"
        )
    try:
        if spec.get("cipher") != "aes-256-gcm" or spec.get("kdf") != "scrypt":
            raise ValueError(spec.get("cipher"))
        if {k: spec.get(k) for k in _SCRYPT} != _SCRYPT:
            raise ValueError("scrypt parameters")
        salt, nonce = base64.b64decode(spec["salt"]), base64.b64decode(spec["nonce"])
        return _cipher(passphrase, salt).decrypt(nonce, body, aad)
    except InvalidTag:
        raise InputError(
            f"{path}: wrong passphrase, or the archive was altered or cut off"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: the archive's encryption header is damaged") from exc


def _cipher(passphrase: bytes, salt: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf = Scrypt(salt=salt, length=32, **_SCRYPT)
    return AESGCM(kdf.derive(passphrase))


def _header_line(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write the archive ({exc.strerror or exc})") from exc
