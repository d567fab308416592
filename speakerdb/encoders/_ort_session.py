"""ONNX Runtime sessions on a cached export, and the prepared form that opens fast.

Opening a session on a plain export parses all its weights, optimises the graph
and re-packs every weight matrix into MLAS's GEMM layout: 0.3-0.8 s for the
base-size x-vector model here, most of a one-shot ``speakerdb verify``. So the
first session on an export also saves its prepared form beside it: the graph as
ONNX Runtime optimised it, with the pre-packed weights in an external file that
later sessions memory-map instead of packing again (embeddings bit-identical;
about 1.1 GB on disk for the base-size model). Pre-packed layouts depend on
the ONNX Runtime version and the CPU, so the prepared form is kept per both; it
is written under a temporary name and renamed into place, and one that does not
load is deleted and made again from the plain export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from ._sealed import problem, seal_folder

__all__ = ["ExportError", "check_sealed", "open_prepared", "open_session"]

log = logging.getLogger(__name__)

_MODEL = "model.onnx"
_WEIGHTS = "weights.bin"


class ExportError(Exception):
    """The model could not be exported, or the export does not reproduce torch."""


def open_session(path: Path, threads: int | None = None, *, save_to: Path | None = None) -> Any:
    """An ONNX Runtime CPU session on ``path``; ExportError when it cannot be loaded.

    With ``save_to``, the optimised graph and pre-packed weights are saved there too.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # 0: one per physical core. A Ray actor sets SPEAKERDB_THREADS (one model per actor).
    options.intra_op_num_threads = threads or _env_threads()
    options.inter_op_num_threads = 1
    # Memory patterns pay off for one fixed input shape; clips vary, and with them on,
    # a long clip's second 30 s window held twice the memory of its first (800 MB).
    options.enable_mem_pattern = False
    # Saving the prepared form logs a warning that it suits only this CPU, which
    # _runtime_tag already ensures; errors still raise.
    options.log_severity_level = 3
    if save_to is not None:
        options.optimized_model_filepath = str(save_to / _MODEL)
        for key, value in (
            ("session.optimized_model_external_initializers_file_name", _WEIGHTS),
            ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ("session.save_external_prepacked_constant_initializers", "1"),
        ):
            options.add_session_config_entry(key, value)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # ONNX Runtime's errors (InvalidProtobuf, Fail, ...) derive from Exception only.
    except Exception as exc:
        raise ExportError(f"{type(exc).__name__}: {exc}") from exc


def open_prepared(path: Path, threads: int | None = None, *, beside: Path | None = None) -> Any:
    """A session on the prepared form of the export at ``path``, made on first use and
    kept beside ``path``, or beside ``beside`` (an export folder is left as it is).

    Raises ExportError when the plain export itself cannot be loaded, or does not
    match the digest recorded when it was written.
    """
    check_sealed(path)
    name = beside or path
    folder = name.with_name(f"{name.stem}-prepared-{_runtime_tag()}")
    if (folder / _MODEL).is_file():
        try:
            _check_folder(folder)
            return open_session(folder / _MODEL, threads)
        except ExportError as exc:
            log.warning("the prepared model %s is unusable (%s); making it again", folder, exc)
    shutil.rmtree(folder, ignore_errors=True)  # unusable, or left without its model
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    try:
        partial.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # a read-only cache
        log.debug("prepared model not saved in %s: %s", folder, exc)
        return open_session(path, threads)
    try:
        # The session that writes the prepared form packs the weights itself: use it.
        session = _saving(path, threads, partial)
        try:
            seal_folder(partial)  # the files keep their seals through the rename
            os.replace(partial, folder)
        except OSError as exc:  # another process won the rename
            log.debug("prepared model not saved in %s: %s", folder, exc)
        return session
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def check_sealed(path: Path) -> None:
    """Raise ExportError unless the cached file ``path`` is the one speakerdb wrote."""
    wrong = problem(path)
    if wrong is not None:
        raise ExportError(f"it {wrong}")


def _check_folder(folder: Path) -> None:
    for name in (_MODEL, _WEIGHTS):
        if name == _MODEL or (folder / name).exists():
            check_sealed(folder / name)


def _saving(path: Path, threads: int | None, partial: Path) -> Any:
    """A session on ``path`` that saves its prepared form into ``partial``; when saving
    fails (a full disk, say), a session on ``path`` alone: the export itself is fine."""
    try:
        return open_session(path, threads, save_to=partial)
    except ExportError as exc:
        session = open_session(path, threads)  # ExportError here: the export is bad
        log.warning("could not save the prepared model in %s (%s)", partial.parent, exc)
        return session


def _runtime_tag() -> str:
    """ONNX Runtime's version and this CPU's instruction sets, which pre-packing depends on."""
    import onnxruntime

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        flags = platform.processor()
    cpu = hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:10]
    return f"ort{onnxruntime.__version__}-{cpu}"


def _env_threads() -> int:
    """``SPEAKERDB_THREADS`` as a number of threads; 0 (ONNX Runtime's choice) if unset."""
    from ..config import ENV_THREADS

    value = os.environ.get(ENV_THREADS, "").strip()
    return int(value) if value.isdigit() else 0
