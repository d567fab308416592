"""Bulk enrollment on a Ray cluster: Ray Data actors decode and embed, the driver writes.

``speakerdb enroll-batch MANIFEST --ray`` (:meth:`SpeakerDB.enroll_batch` with
``ray=RayOptions(...)``) runs the manifest's rows through ``map_batches`` on a pool
of :class:`RayOptions.actors` actors. Each actor loads the model once, on
:attr:`RayOptions.threads` threads, and for each batch of rows decodes the files,
leaves out the clips the database holds already (so a rerun of an interrupted job
embeds only what is left), and embeds the rest. The driver consumes the results
in the manifest's order, speaker by speaker, and enrolls them as the plain batch
does (:func:`speakerdb.services._batch.collect`): the same quality gates, name
checks and reports, committed several speakers per transaction. The driver never
loads the model; only the actors do.

Without ``address``, a local Ray cluster is started for the job and stopped after
it; with one, the job joins that cluster, whose nodes must have speakerdb (with
the model's extras) installed, and must reach the files and the database.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio._decode import Clip
from ..errors import AudioError, InputError, SpeakerDBError
from ..types import EncoderInfo
from ._batch import BatchReport, Decoder, ManifestRow, by_speaker, collect

if TYPE_CHECKING:
    from ._enrolling import Enrolling
    from ._model import ModelSlot

__all__ = ["RayOptions", "enroll_batch_ray"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How a batch runs on Ray: the cluster (``None``: a local one, started for the job),
    the number of actors (one model copy each), each actor's threads, and the rows
    each actor embeds at a time."""

    address: str | None = None
    actors: int = 2
    threads: int = 1
    batch_size: int = 8

    def __post_init__(self) -> None:
        for name in ("actors", "threads", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1, got {getattr(self, name)}")


def enroll_batch_ray(
    enrolling: Enrolling,
    slot: ModelSlot,
    location: Path | str | None,
    rows: Iterable[ManifestRow],
    progress: Callable[[int], None] | None,
    options: RayOptions,
    *,
    force: bool,
    keep_audio: bool = False,
) -> BatchReport:
    """Enroll ``rows`` with the model of ``slot`` (:meth:`ModelSlot.load_spec`: the actors
    load it) into the database at ``location`` through ``enrolling``, embedding on Ray.

    :class:`InputError` for ``keep_audio`` (the actors keep no audio), or when the
    database is not named by a path or URL the actors can open."""
    if keep_audio:
        raise InputError("a batch on Ray keeps no audio; leave out --ray or --keep-audio")
    if location is None:
        raise InputError("a batch on Ray needs a database named by a path or URL")
    if isinstance(location, Path):
        location = str(location.resolve())  # the actors' folder may be another
    load = slot.load_spec()
    advance = progress or (lambda n: None)
    grouped = by_speaker(rows)
    ordered = [row for group in grouped.values() for row in group]
    if not ordered:
        return BatchReport((), ())
    ray = _ray()
    started = _connect(ray, options)
    try:
        results = _embedded(ray, ordered, load, location, options)
        embedder = _Embeddings()
        decoder = Decoder(enrolling, advance, load=embedder.clip_of)
        groups = _groups(grouped, results, embedder, decoder, advance)
        return collect(enrolling.enroll_many(groups, force=force, embedder=embedder), decoder)
    finally:
        if started:
            ray.shutdown()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray: pip install 'speakerdb[ray]' (or leave out --ray)"
        ) from None
    return ray


def _connect(ray: Any, options: RayOptions) -> bool:
    """Join ``options.address``, or start a local cluster; whether this call started one."""
    if ray.is_initialized():
        return False
    if options.address:
        ray.init(address=options.address, log_to_driver=False)
        return False
    cpus = max(2, os.cpu_count() or 2)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return True


def _embedded(
    ray: Any,
    rows: Sequence[ManifestRow],
    load: tuple[str, dict[str, Any]],
    location: str,
    options: RayOptions,
) -> Iterator[dict[str, Any]]:
    """Each row's result, in the rows' order (see :class:`_Embed`)."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    # Progress is the command's own bar; Ray Data's would print to stdout.
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Absolute: the actors' working folder is not the driver's.
    items = [
        {"index": i, "path": os.path.abspath(row.path) if row.path else ""}
        for i, row in enumerate(rows)
    ]
    # Enough blocks for every actor to have work, and not so many that each is tiny.
    blocks = min(len(items), max(4 * options.actors, len(items) // 64))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    model, load_options = load
    embedded = dataset.map_batches(
        _Embed,
        fn_constructor_kwargs={
            "model": model,
            "load_options": load_options,
            "location": location,
            "threads": options.threads,
        },
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        batch_size=options.batch_size,
        # A fraction of a CPU: the actors' threads are set by `threads`, and whole CPUs
        # would leave none for Ray's own tasks on a small machine.
        num_cpus=0.5,
    )
    return iter(embedded.iter_rows())


class _Embed:
    """A Ray Data actor: one model copy, used for every batch it is given.

    For each row: ``sha256``, ``samples`` (16 kHz float32; empty for a clip the
    database holds already), ``embedding`` (empty unless embedded) and ``error``
    (the reason a row's file could not be used, else ``""``).
    """

    def __init__(
        self, model: str, load_options: dict[str, Any], location: str, threads: int
    ) -> None:
        from ..config import ENV_THREADS
        from ..encoders._base import load_encoder

        os.environ[ENV_THREADS] = str(threads)  # ONNX Runtime's threads
        _limit_torch(threads)
        self._encoder = load_encoder(model, **load_options)
        self._location = location
        self._info = json.dumps(_info_fields(self._encoder.info))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from ..audio._decode import load_clip

        clips: list[Clip | None] = []
        errors: list[str] = []
        for path in batch["path"]:
            try:
                clips.append(load_clip(str(path)))
                errors.append("")
            except SpeakerDBError as exc:
                clips.append(None)
                errors.append(str(exc))
        done = self._enrolled([c.sha256 for c in clips if c is not None])
        fresh = [c for c in clips if c is not None and c.sha256 not in done]
        vectors = dict(
            zip((c.sha256 for c in fresh), self._embed(fresh, errors, clips), strict=True)
        )
        empty = np.zeros(0, np.float32)
        return {
            "index": batch["index"],
            "sha256": [c.sha256 if c is not None else "" for c in clips],
            "samples": [
                c.samples if c is not None and c.sha256 not in done else empty for c in clips
            ],
            "embedding": [vectors.get(c.sha256, empty) if c is not None else empty for c in clips],
            "error": errors,
            "encoder": [self._info] * len(clips),
        }

    def _enrolled(self, hashes: list[str]) -> set[str]:
        """The hashes the database holds already (none when it does not exist yet)."""
        if not hashes:
            return set()
        from ..errors import DatabaseError
        from ..storage import open_storage

        try:
            storage = open_storage(self._location, create=False)
        except DatabaseError:
            return set()
        try:
            with storage.read() as snapshot:
                return set(snapshot.enrolled_hashes(hashes))
        finally:
            storage.close()

    def _embed(
        self, fresh: list[Clip], errors: list[str], clips: list[Clip | None]
    ) -> list[np.ndarray]:
        """The embeddings of ``fresh``; a clip the encoder refuses gets an empty one and
        its reason in ``errors``."""
        from ..encoders._frontend import embed_clips

        if not fresh:
            return []
        try:
            return list(embed_clips(self._encoder, fresh))
        except AudioError:
            pass
        vectors = []
        for clip in fresh:  # one by one, to tell which clip it was
            try:
                vectors.append(embed_clips(self._encoder, [clip])[0])
            except AudioError as exc:
                errors[clips.index(clip)] = str(exc)
                vectors.append(np.zeros(0, np.float32))
        return vectors


def _limit_torch(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _info_fields(info: EncoderInfo) -> dict[str, Any]:
    return {
        "model": info.model,
        "revision": info.revision,
        "dim": info.dim,
        "rate": info.sample_rate,
    }


class _Embeddings:
    """The actors' results for the speaker being enrolled: the driver's embedder and the
    :class:`Decoder`'s loader."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}  # manifest line -> result
        self.vectors: dict[str, np.ndarray] = {}
        self._info: EncoderInfo | None = None

    def take(self, row: ManifestRow, result: dict[str, Any]) -> None:
        self.rows[row.line] = result
        if len(result["embedding"]):
            self.vectors[str(result["sha256"])] = np.asarray(result["embedding"], np.float32)
        if self._info is None:
            fields = json.loads(str(result["encoder"]))
            self._info = EncoderInfo(
                fields["model"], fields["revision"], int(fields["dim"]), int(fields["rate"])
            )

    def clip_of(self, row: ManifestRow) -> Clip:
        result = self.rows.pop(row.line)
        if result["error"]:
            raise AudioError(str(result["error"]))
        samples = np.asarray(result["samples"], np.float32)
        return Clip(samples, row.path, str(result["sha256"]))

    def embed(self, clips: Sequence[Clip]) -> np.ndarray:
        return np.stack([self.vectors.pop(c.sha256) for c in clips])

    def info(self) -> EncoderInfo:
        if self._info is None:
            raise InputError("no clip of the batch was embedded")
        return self._info


def _groups(
    grouped: dict[str, list[ManifestRow]],
    results: Iterator[dict[str, Any]],
    embedder: _Embeddings,
    decoder: Decoder,
    advance: Callable[[int], None],
) -> Iterator[tuple[str, list[Clip]]]:
    """Each speaker's clips as their rows' results arrive (in order), decoded by the actors."""
    for speaker, group in grouped.items():
        for row in group:
            embedder.take(row, next(results))
        clips = decoder(speaker, group)
        if clips:
            decoder.clips[speaker] = clips
            yield speaker, clips
            advance(len(clips))
