"""Opening a database: the options of :class:`~speakerdb.SpeakerDB` checked, and the
services it composes built on one storage (:class:`Services`).

Every option is checked before the first query, so a bad threshold, backend name or
replay window is refused when the database is opened, and the storage opened for it
is closed again. The services share the storage, the model slot and the decision
settings; none of them knows the facade.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from ..config import (
    database_location,
    parse_replay_window,
    parse_threshold,
    resolve_backend,
    resolve_replay_check,
    resolve_speech_gate,
)
from ..errors import InputError
from ..storage import open_storage
from ._audit import AuditLog
from ._batch import enroll_batch
from ._checklist import query_checks
from ._cohort import CohortTools
from ._enrolling import Enrolling
from ._guards import Guards
from ._idle import LastMatches
from ._index import IndexTools
from ._keys import KeyRing
from ._lifecycle import Lifecycle
from ._model import ModelSlot
from ._querying import Querying
from ._retention import expire_due
from ._sealing import KeyChoice
from ._segments import Segmenting
from ._settings import Settings
from ._speakers import Roster

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from ..decision._countermeasure import Countermeasure
    from ..encoders._protocol import Encoder
    from ..storage import Storage
    from ._batch import BatchReport, ManifestRow
    from ._raybatch import RayOptions

__all__ = ["Services", "discard_if_unused", "open_services"]

_ANY = (-math.inf, math.inf)


class Services:
    """The services of one open database, sharing its storage, model and settings."""

    def __init__(
        self,
        storage: Storage,
        location: Path | str | None,
        keys: KeyChoice,
        slot: ModelSlot,
        settings: Settings,
    ) -> None:
        self.storage, self.location, self.keys, self.slot = storage, location, keys, slot
        self.settings = settings
        self.enrolling = Enrolling(storage, slot, settings, keys=keys)
        self.audit = AuditLog(storage)
        # Hears accepted decisions, and records last matches off the queries' path.
        self.matches = LastMatches(storage, sweep=lambda now: expire_due(storage, now))
        checks = (*query_checks(storage, settings), self.matches)
        self.querying = Querying(storage, slot, settings, self.audit, checks)
        self.segmenting = Segmenting(storage, slot, settings)
        self.roster = Roster(storage)
        self.cohort = CohortTools(storage, slot)
        self.guards = Guards(settings)
        self.index = IndexTools(storage)
        self.lifecycle = Lifecycle(storage, slot, keys)
        self.keyring = KeyRing(storage)

    def enroll_batch(
        self,
        rows: Iterable[ManifestRow],
        progress: Callable[[int], None] | None,
        *,
        force: bool,
        ray: RayOptions | None,
        keep_audio: bool,
    ) -> BatchReport:
        """A manifest's ``rows`` enrolled by this process (:func:`._batch.enroll_batch`),
        or, with ``ray``, embedded by Ray actors and written here
        (:func:`._raybatch.enroll_batch_ray`, imported only then)."""
        if ray is None:
            return enroll_batch(self.enrolling, rows, progress, force=force, keep_audio=keep_audio)
        from ._raybatch import enroll_batch_ray

        return enroll_batch_ray(
            self.enrolling,
            self.slot,
            self.location,
            rows,
            progress,
            ray,
            force=force,
            keep_audio=keep_audio,
        )

    def close(self, *, discard_if_empty: bool = False) -> None:
        """Write the last matches heard, then close the storage (or discard it: see
        :func:`discard_if_unused`)."""
        self.matches.flush(timeout=10)
        if not (discard_if_empty and discard_if_unused(self.storage)):
            self.storage.close()


def open_services(
    path: str | os.PathLike[str] | None,
    storage: Storage | None,
    *,
    create: bool,
    model: str | None,
    encoder: Encoder | None,
    threshold: float | None,
    load_options: dict[str, Any],
    replay_window: int | str | None,
    countermeasure: str | Countermeasure | None,
    speech_gate: bool | None,
    replay_check: bool | None,
    audio_key: bytes | str | None,
) -> Services:
    """The services of the database at ``path`` (or on ``storage``), its options checked
    (:mod:`speakerdb.config` has their precedence). A refused option closes the storage
    again: nothing is left open."""
    if storage is not None and path is not None:
        raise InputError("give a database path or a storage, not both")
    # Where the database is, for processes that open it themselves (Ray actors).
    location = None if storage is not None else database_location(path)
    storage = storage or open_storage(location or "", create=create)
    try:
        # Checked against the deciding score's bounds when a query resolves its policy.
        cosine = None if threshold is None else parse_threshold(threshold, "argument", _ANY)
        if load_options.get("backend") is not None:
            resolve_backend(load_options["backend"])  # refused now, not at the first query
        window = None if replay_window is None else parse_replay_window(replay_window, "argument")
        keys = KeyChoice(audio_key)
        with storage.read() as snapshot:
            stored = snapshot.encoder()
        slot = ModelSlot(storage.path, stored, model, encoder, load_options)
        settings = Settings(storage, slot, cosine, window, countermeasure)
        if cosine is not None:
            settings.policy()  # out of the deciding score's bounds: refused now
        services = Services(storage, location, keys, slot, settings)
        services.enrolling.speech_gate = resolve_speech_gate(speech_gate)
        settings.replay_check = resolve_replay_check(replay_check)
    except BaseException:
        storage.close()  # a refused database is not left open
        raise
    return services


def discard_if_unused(storage: Storage) -> bool:
    """Close and delete the database if it was created by this opening and nothing was
    enrolled: a first enrollment that failed leaves no empty database behind."""
    if not storage.created:
        return False
    with storage.read() as snapshot:
        if snapshot.names():
            return False
    storage.discard()
    return True
