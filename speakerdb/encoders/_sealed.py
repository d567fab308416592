"""Model artefacts in the cache, sealed when written and checked when loaded.

A cached export decides every answer, so it is trusted only as far as the cache
is. :func:`private_cache` refuses a cache root that another user can write
(:class:`~speakerdb.errors.ModelError` naming the fix) and creates its folders
owner-only. :func:`seal` records an artefact's SHA-256 in ``<name>.seal`` beside
it, with a stamp of its size, mtime and inode, and makes the file owner-only;
:func:`problem` checks an artefact against its seal. While the stamp holds, the
file is not read again, so a start does not hash gigabytes; when the stamp
changed (a copied cache, say) the file is hashed once and the stamp renewed. An
artefact without a seal, or whose digest differs, is reported, and the loaders
delete and rebuild it as they do a damaged one.

The seal sits in the same owner-only folder as the artefact: it catches a file
swapped or changed behind speakerdb's back, not a process running as the same
user, which could rewrite the seal too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import stat
from pathlib import Path

from ..config import cache_root
from ..errors import ModelError

__all__ = ["SEAL_SUFFIX", "private_cache", "problem", "seal", "seal_folder", "sweep_folder"]

log = logging.getLogger(__name__)

SEAL_SUFFIX = ".seal"
_BLOCK = 1 << 20


def private_cache(name: str) -> Path:
    """The cache folder ``name`` under the cache root, both created owner-only.

    Raises ModelError when the root or the folder can be written by another user.
    A folder that cannot be created (a read-only cache) is returned all the same.
    """
    root = cache_root()
    folder = root / name
    for path in (root, folder):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            log.debug("cannot create %s: %s", path, exc)
            return folder
        _refuse_shared(path)
    return folder


def seal(path: Path, *, at: Path | None = None) -> None:
    """Make ``path`` owner-only and record its digest for the artefact named ``at``
    (default ``path``), which ``path`` is about to be renamed to."""
    os.chmod(path, 0o600)
    _write_seal(at or path, _digest(path), _stamp(path))


def seal_folder(folder: Path) -> None:
    """Seal every file in ``folder`` that has no seal yet."""
    os.chmod(folder, 0o700)
    for path in _artefacts(folder):
        if not _seal_of(path).exists():
            seal(path)


def problem(path: Path) -> str | None:
    """None when ``path`` is the artefact its seal recorded, else what is wrong."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return "is a symbolic link"
        saved = json.loads(_seal_of(path).read_text(encoding="utf-8"))
        if saved["stamp"] == _stamp(path):
            return None
        expected = str(saved["sha256"])
    except FileNotFoundError:
        return "has no record of its digest (an older speakerdb wrote it, or not speakerdb)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"has an unreadable digest record ({exc})"
    if _digest(path) != expected:
        return "differs from the file written (SHA-256 mismatch)"
    try:  # the same bytes under a new stamp (a copied cache): hash it once only
        _write_seal(path, expected, _stamp(path))
    except OSError as exc:
        log.debug("cannot renew the seal of %s: %s", path, exc)
    return None


def sweep_folder(folder: Path) -> None:
    """Delete the files in ``folder`` that do not match their seal (a cache rebuilds them)."""
    for path in _artefacts(folder):
        wrong = problem(path)
        if wrong is not None:
            log.warning("the cached model file %s %s; deleting it", path, wrong)
            path.unlink(missing_ok=True)
            _seal_of(path).unlink(missing_ok=True)


def _artefacts(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.suffix != SEAL_SUFFIX and not p.is_dir()]
    except OSError:
        return []


def _refuse_shared(path: Path) -> None:
    info = path.stat()
    foreign = info.st_uid not in (os.geteuid(), 0)
    if foreign or info.st_mode & 0o022:
        owner = "another user" if foreign else "you"
        raise ModelError(
            f"the model cache {path} (owned by {owner}, mode {stat.filemode(info.st_mode)}) "
            "can be written by other users, who could plant a model that decides every "
            f"answer; `chmod 700 {shlex.quote(str(path))}` if it is yours, or set "
            "SPEAKERDB_CACHE_DIR to a folder of your own"
        )


def _seal_of(path: Path) -> Path:
    return path.with_name(path.name + SEAL_SUFFIX)


def _stamp(path: Path) -> list[int]:
    info = os.stat(path, follow_symlinks=False)
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_seal(path: Path, digest: str, stamp: list[int]) -> None:
    target = _seal_of(path)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"sha256": digest, "stamp": stamp}, fh)
    os.replace(partial, target)
