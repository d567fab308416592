"""The :class:`SpeakerDB` facade: enroll, identify, verify, list and remove speakers.

Thresholds, score normalisation, calibration and the audit log are methods of
``SpeakerDB`` too; they are written in :mod:`speakerdb.services._settings`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._names import admit_name, clean_name
from .audio._decode import Clip, ClipInput, to_clip
from .config import DEFAULT_MODEL, database_path, parse_threshold, resolve_backend
from .decision._population import Population
from .decision._ranking import normalized_claim, rank
from .encoders._base import (
    Encoder,
    check_model_name,
    check_same_encoder,
    load_encoder,
    pinned_options,
    requested_model,
)
from .encoders._frontend import embed_clips
from .errors import DatabaseError, InputError
from .services._audit import AuditLog
from .services._enrolling import _EnrollingMixin
from .services._settings import _SettingsMixin
from .storage import IndexAdmin, Storage, open_storage, upgrade_storage
from .types import (
    DatabaseInfo,
    Identification,
    Speaker,
    Utterance,
    Verification,
)

if TYPE_CHECKING:
    from .storage._index import SpeakerIndex
    from .storage._indexkind import IndexChoice

__all__ = ["ClipInput", "SpeakerDB"]

log = logging.getLogger(__name__)


class SpeakerDB(_EnrollingMixin, _SettingsMixin):
    """A speaker database on one SQLite file, with its FAISS index beside it, or on
    any other :class:`~speakerdb.storage.Storage` given as ``storage``.

    Options follow the precedence in :mod:`speakerdb.config`: argument, then
    ``SPEAKERDB_*`` environment variable, then the value stored in the
    database, then the default. The encoder is loaded on first use and kept
    for the life of the object. Queries may run from several threads at once.
    ``backend`` (else ``SPEAKERDB_BACKEND``) chooses how an x-vector model runs:
    ``auto``, ``onnx``, ``torch``, ``openvino-bf16`` or ``torch-bf16``
    (:mod:`speakerdb.encoders._base`).

    A clip (:data:`~speakerdb.audio.ClipInput`) is a file path, the bytes of an
    audio file or a binary file object holding one, a ``(samples, rate)`` pair, or
    a decoded :class:`~speakerdb.audio.Clip`; :mod:`speakerdb.audio` checks each.

    ``storage`` (for example :class:`speakerdb.storage.MemoryStorage`) replaces
    ``path`` and ``create``; the database then owns it and closes it.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        threshold: float | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | None = None,
        encoder: Encoder | None = None,
        create: bool = True,
        backend: str | None = None,
        storage: Storage | None = None,
    ) -> None:
        if storage is not None and path is not None:
            raise InputError("give a database path or a storage, not both")
        self._storage = storage or open_storage(database_path(path), create=create)
        try:
            self._setup(model, threshold, revision, local_files_only, cache_dir, encoder)
            if backend is not None:
                resolve_backend(backend)  # a bad name is refused now, not at the first query
            self._load_options["backend"] = backend
        except BaseException:
            self._storage.close()  # a refused database is not left open
            raise

    def _setup(
        self,
        model: str | None,
        threshold: float | None,
        revision: str | None,
        local_files_only: bool | None,
        cache_dir: str | None,
        encoder: Encoder | None,
    ) -> None:
        with self._storage.read() as snapshot:
            self._stored = snapshot.encoder()
        self._threshold_arg = None if threshold is None else parse_threshold(threshold, "argument")
        self._model_arg = requested_model(model, encoder)
        self._load_options = {
            "revision": revision,
            "local_files_only": local_files_only,
            "cache_dir": cache_dir,
        }
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._audit = AuditLog(self._storage)
        # An explicit model is checked now; one from SPEAKERDB_MODEL only when the
        # encoder is needed, so that listing or renaming never depends on it.
        if model is not None or encoder is not None:
            check_model_name(self.path, self._stored, self._model_arg)

    @staticmethod
    def upgrade(path: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
        """Migrate an existing database to this version's schema; return ``(before, after)``."""
        return upgrade_storage(database_path(path))

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> SpeakerDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections. The object cannot be used afterwards."""
        self._storage.close()

    def discard_if_unused(self) -> bool:
        """Close, and delete the database files if this object created them and nothing
        was enrolled: a first enrollment that failed leaves no empty database behind.
        """
        if not self._storage.created or self.speakers():
            return False
        self._storage.discard()
        return True

    @property
    def path(self) -> Path:
        return self._storage.path

    @property
    def index_path(self) -> Path:
        return self._index_admin().index_path

    @property
    def model(self) -> str:
        """The model in use: argument or ``SPEAKERDB_MODEL``, else the stored one, else default."""
        if self._model_arg is not None:
            return self._model_arg
        return self._stored.model if self._stored is not None else DEFAULT_MODEL

    # -- queries ---------------------------------------------------------

    def embed(self, clips: Sequence[ClipInput]) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of the clips, with this database's encoder."""
        return self._embed([to_clip(c) for c in clips])

    def identify(
        self,
        clip: ClipInput,
        *,
        top_k: int = 5,
        threshold: float | None = None,
        score_norm: str | None = None,
    ) -> Identification:
        """Top-``k`` speakers for ``clip`` by cosine; "unknown" below the threshold.

        ``score_norm`` (``"margin"``, ``"margin-duration"`` or ``"asnorm"``) decides by a
        normalised score for this query (default: see :meth:`score_norm` and
        :mod:`speakerdb.decision._norms`); :attr:`Match.normalized` holds it.
        """
        results = self.identify_many(
            [clip], top_k=top_k, threshold=threshold, score_norm=score_norm
        )
        return results[0]

    def identify_many(
        self,
        clips: Sequence[ClipInput],
        *,
        top_k: int = 5,
        threshold: float | None = None,
        score_norm: str | None = None,
    ) -> list[Identification]:
        """:meth:`identify` for several clips, embedding and searching them together."""
        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        policy = self._policy(threshold, score_norm)
        decoded = [to_clip(c) for c in clips]
        queries = self._embed(decoded)
        durations = [clip.duration_s for clip in decoded]
        found = rank(policy, queries, top_k, self._storage.search, self.population, durations)
        return self._audit.log_identifications(
            [
                Identification(clip.source, matches, policy.threshold, policy.score_norm, policy)
                for clip, matches in zip(decoded, found, strict=True)
            ]
        )

    def verify(
        self,
        name: str,
        clip: ClipInput,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
    ) -> Verification:
        """Accept or reject the claim that ``clip`` is ``name``, by cosine against the template
        (or by a normalised score, as in :meth:`identify`)."""
        name = clean_name(name)
        policy = self._policy(threshold, score_norm)
        with self._storage.read() as snapshot:
            template = snapshot.template(name)
        decoded = to_clip(clip)
        query = self._embed([decoded])[0]
        score = float(np.dot(query, template))
        normalized = normalized_claim(
            policy, name, query, score, self._storage.search, self.population, decoded.duration_s
        )
        result = Verification(
            name, decoded.source, score, policy.threshold, normalized, policy.score_norm, policy
        )
        return self._audit.log_verification(result)

    def population(self) -> Population:
        """Every enrolled utterance embedding with its speaker (for calibration and AS-norm)."""
        with self._storage.read() as snapshot:
            return snapshot.population()

    def speakers(self) -> list[Speaker]:
        """All speakers, by name."""
        with self._storage.read() as snapshot:
            return snapshot.speakers()

    def speaker(self, name: str) -> Speaker:
        name = clean_name(name)
        with self._storage.read() as snapshot:
            return snapshot.speaker(name)

    def utterances(self, name: str) -> list[Utterance]:
        """The enrolled clips of ``name``, oldest first."""
        name = clean_name(name)
        with self._storage.read() as snapshot:
            return snapshot.utterances(name)

    # -- changes ---------------------------------------------------------

    def remove(self, name: str) -> Speaker:
        """Delete ``name`` with all their utterances and embeddings; return what was removed."""
        name = clean_name(name)
        with self._storage.change(templates=True) as change:
            return change.remove_speaker(name)

    def remove_utterance(self, utterance_id: int) -> Speaker:
        """Delete one enrolled clip and its embedding; return its speaker, template recomputed.

        A speaker's last clip is not removed, since a speaker without clips has no
        voiceprint: that raises :class:`InputError`; remove the speaker instead.
        """
        with self._storage.change(templates=True) as change:
            speaker = change.remove_utterance(utterance_id)
        log.info("removed clip #%d of %r", utterance_id, speaker.name)
        return speaker

    def rename(self, old: str, new: str) -> Speaker:
        """Give speaker ``old`` the name ``new``; refuse when ``new`` is taken."""
        old, new = clean_name(old), clean_name(new)
        with self._storage.change() as change:
            admit_name(new, new, change.names() - {old})
            return change.rename(old, new)

    # -- encoder and index ----------------------------------------------

    def encoder(self) -> Encoder:
        """The encoder, loaded on first use and checked against the database's."""
        with self._encoder_lock:
            if self._encoder is None:
                check_model_name(self.path, self._stored, self._model_arg)
                options = pinned_options(self._load_options, self._stored, self.model)
                self._encoder = load_encoder(self.model, **options)
            if self._stored is not None:
                check_same_encoder(self.path, self._stored, self._encoder.info)
            return self._encoder

    def current_index(self) -> SpeakerIndex:
        """The FAISS index, agreeing with the database; loaded or rebuilt when stale."""
        return self._index_admin().current_index()

    def rebuild_index(self) -> int:
        """Rebuild the index file from the database; return the number of speakers in it."""
        return self._index_admin().rebuild_index()

    def index_choice(self) -> IndexChoice:
        """The index setting (``auto``, ``flat``, ``ivf``) and the index it gives now."""
        return self._index_admin().index_choice()

    def set_index_kind(self, kind: str, *, ivf_from: int | None = None) -> IndexChoice:
        """Store the index setting (see :mod:`speakerdb.storage._indexkind`) and rebuild by
        it if needed.

        ``ivf_from`` sets where ``auto`` switches to IVF (left ``None``: kept as stored).
        """
        return self._index_admin().set_index_kind(kind, ivf_from)

    def info(self) -> DatabaseInfo:
        """Path, model, threshold, counts, schema revision and index state."""
        with self._storage.read() as snapshot:
            counts, version = snapshot.counts(), snapshot.version()
        return self._describe(self.path, self._stored, counts, version)

    # -- internals -------------------------------------------------------

    def _embed(self, clips: Sequence[Clip]) -> np.ndarray:
        return embed_clips(self.encoder(), clips)

    def _index_admin(self) -> IndexAdmin:
        if not isinstance(self._storage, IndexAdmin):
            raise DatabaseError(f"{self.path}: this storage has no search index to administer")
        return self._storage
