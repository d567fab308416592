"""A saved x-vector model's files and identity, found without importing transformers.

The query path of the ONNX backend must not pay for importing transformers or
huggingface_hub (seconds), so what it needs to know about a model is read here
from the files themselves:

- a local directory is read as it is;
- a hub id is looked up in the Hugging Face cache the way huggingface_hub lays
  it out (``models--org--name/refs/<branch>`` holds the commit,
  ``snapshots/<commit>/`` the files), honouring ``cache_dir``, ``HF_HUB_CACHE``
  and ``HF_HOME``; nothing touches the network. A model that is not cached is
  not found here, and the transformers loader takes over (and may download it).

The revision is the one the transformers path records too: the snapshot's
commit for a hub model, ``sha256:`` and 16 hex digits of the weights file for a
local directory. Hashing a 400 MB weights file takes most of a second, so the
digest is remembered under :func:`~speakerdb.config.cache_root`, keyed by the
file's path, size, modification time and inode: a changed file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._sealed import private_cache

__all__ = [
    "WEIGHT_FILES",
    "ModelFiles",
    "file_sha256",
    "locate_model",
    "model_revision",
    "weights_revision",
]

log = logging.getLogger(__name__)

#: The single-file weights a local directory may hold, in the order transformers prefers.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's files are and what they say about it."""

    folder: Path
    config: dict[str, Any]
    config_bytes: bytes
    preprocessor: dict[str, Any]
    revision: str | None


def locate_model(
    model: str, *, revision: str | None = None, cache_dir: str | None = None
) -> ModelFiles | None:
    """The files of ``model`` (a local directory or a cached hub id), or None when
    they are not all on disk: then only the transformers loader can tell why.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        folder, commit = path, None
    else:
        found = _cached_snapshot(model, revision, cache_dir)
        if found is None:
            return None
        folder, commit = found
    try:
        config_bytes = (folder / "config.json").read_bytes()
        config = json.loads(config_bytes)
        preprocessor = json.loads((folder / "preprocessor_config.json").read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(preprocessor, dict):
        return None
    return ModelFiles(
        folder=folder,
        config=config,
        config_bytes=config_bytes,
        preprocessor=preprocessor,
        revision=commit or weights_revision(folder),
    )


def model_revision(
    model: str, *, revision: str | None = None, cache_dir: str | None = None
) -> str | None:
    """The revision of ``model``: its cached snapshot's commit, or its weights' hash."""
    path = Path(model).expanduser()
    if path.is_dir():
        return weights_revision(path)
    found = _cached_snapshot(model, revision, cache_dir)
    return found[1] if found is not None else None


def weights_revision(folder: Path) -> str | None:
    """``sha256:`` and 16 hex digits of a local model's weights file, or None without one."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return "sha256:" + file_sha256(folder / name)[:16]
    return None


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``, remembered while the file's size and mtime stay the same."""
    stat = path.stat()
    resolved = str(path.resolve())
    stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    memo = private_cache("sha256") / (hashlib.sha1(resolved.encode()).hexdigest() + ".json")
    try:
        saved = json.loads(memo.read_text())
        if saved["path"] == resolved and saved["stamp"] == stamp:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    _remember(memo, {"path": resolved, "stamp": stamp, "sha256": value})
    return value


def _remember(memo: Path, entry: dict[str, Any]) -> None:
    # Best effort: a read-only cache costs a re-hash next time, never an error.
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(entry))
        partial.chmod(0o600)
        os.replace(partial, memo)
    except OSError as exc:
        log.debug("cannot remember the weights hash in %s: %s", memo, exc)


def _hub_cache(cache_dir: str | None) -> Path:
    """huggingface_hub's cache folder, resolved as it resolves it."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "huggingface" / "hub"


def _cached_snapshot(
    model: str, revision: str | None, cache_dir: str | None
) -> tuple[Path, str] | None:
    """The snapshot folder and commit of hub id ``model`` at ``revision``, if cached."""
    if model.count("/") > 1 or not model.strip("/"):
        return None
    repo = _hub_cache(cache_dir) / ("models--" + model.replace("/", "--"))
    wanted = revision or "main"
    if _COMMIT.match(wanted):
        commit = wanted
    else:
        try:
            commit = (repo / "refs" / wanted).read_text().strip()
        except OSError:
            return None
    folder = repo / "snapshots" / commit
    return (folder, commit) if _COMMIT.match(commit) and folder.is_dir() else None
