"""The :class:`SpeakerDB` facade: enroll, identify, verify, list and remove speakers.

Thresholds, score normalisation, calibration and the audit log are methods of
``SpeakerDB`` too; they are written in :mod:`speakerdb.services._settings`.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._names import admit_name, clean_name
from .audio._decode import Clip, ClipInput, to_clip
from .config import DEFAULT_MODEL, database_path, parse_threshold, resolve_backend
from .decision._population import Population, read_population
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
from .errors import DatabaseError, DuplicateSpeaker, InputError
from .services._enrolling import _EnrollingMixin
from .services._settings import _SettingsMixin
from .storage._index import SpeakerIndex, index_path_for
from .storage._indexkind import IndexChoice
from .storage.sqlite import _catalog as catalog
from .storage.sqlite._audit import AuditLog
from .storage.sqlite._indexsync import IndexSync
from .storage.sqlite._schema import ensure_schema
from .storage.sqlite._schema import upgrade as upgrade_schema
from .storage.sqlite._store import Store, from_blob
from .types import (
    DatabaseInfo,
    Identification,
    Speaker,
    Utterance,
    Verification,
)

__all__ = ["ClipInput", "SpeakerDB"]

log = logging.getLogger(__name__)


class SpeakerDB(_EnrollingMixin, _SettingsMixin):
    """A speaker database on one SQLite file, with its FAISS index beside it.

    Options follow the precedence in :mod:`speakerdb.config`: argument, then
    ``SPEAKERDB_*`` environment variable, then the value stored in the
    database, then the default. The encoder is loaded on first use and kept
    for the life of the object. Queries may run from several threads at once.
    ``backend`` (else ``SPEAKERDB_BACKEND``) chooses how an x-vector model runs:
    ``auto``, ``onnx``, ``torch``, ``openvino-bf16`` or ``torch-bf16``
    (:mod:`speakerdb.encoders._base`).

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
    ) -> None:
        self._store = Store.open(database_path(path), create=create)
        try:
            self._setup(model, threshold, revision, local_files_only, cache_dir, encoder)
            if backend is not None:
                resolve_backend(backend)  # a bad name is refused now, not at the first query
            self._load_options["backend"] = backend
        except BaseException:
            self._store.close()  # a refused database is not left open
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
        ensure_schema(self._store)
        with self._store.read() as session:
            self._stored = catalog.read_encoder(session)
        self._threshold_arg = None if threshold is None else parse_threshold(threshold, "argument")
        self._model_arg = requested_model(model, encoder)
        self._load_options = {
            "revision": revision,
            "local_files_only": local_files_only,
            "cache_dir": cache_dir,
        }
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._index = IndexSync(self._store, self.index_path, self._index_dim)
        self._audit = AuditLog(self._store)
        # An explicit model is checked now; one from SPEAKERDB_MODEL only when the
        # encoder is needed, so that listing or renaming never depends on it.
        if model is not None or encoder is not None:
            check_model_name(self.path, self._stored, self._model_arg)

    @staticmethod
    def upgrade(path: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
        """Migrate an existing database to this version's schema; return ``(before, after)``."""
        target = database_path(path)
        if not target.is_file():
            raise DatabaseError(f"{target}: no database to upgrade")
        store = Store.open(target)
        try:
            return upgrade_schema(store)
        finally:
            store.close()

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> SpeakerDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections. The object cannot be used afterwards."""
        self._store.close()

    def discard_if_unused(self) -> bool:
        """Close, and delete the database files if this object created them and nothing
        was enrolled: a first enrollment that failed leaves no empty database behind.
        """
        if not self._store.created or self.speakers():
            return False
        self.close()
        lock = self.index_path.with_name(self.index_path.name + ".lock")
        for path in (self.path, *_sqlite_sidecars(self.path), self.index_path, lock):
            path.unlink(missing_ok=True)
        return True

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def index_path(self) -> Path:
        return index_path_for(self._store.path)

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
        norm, top_n, limit = self.decision(threshold, score_norm)
        decoded = [to_clip(c) for c in clips]
        queries = self._embed(decoded)
        durations = [clip.duration_s for clip in decoded]
        found = rank(norm, queries, top_k, top_n, self._index, self.population, durations)
        return self._audit.log_identifications(
            [
                Identification(clip.source, matches, limit, norm)
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
        norm, top_n, limit = self.decision(threshold, score_norm)
        with self._store.read() as session:
            template = from_blob(catalog.require_speaker(session, name).template)
        decoded = to_clip(clip)
        query = self._embed([decoded])[0]
        score = float(np.dot(query, template))
        normalized = None
        if norm != "none":
            normalized = normalized_claim(
                norm, name, query, score, top_n, self._index, self.population, decoded.duration_s
            )
        result = Verification(name, decoded.source, score, limit, normalized, norm)
        return self._audit.log_verification(result)

    def population(self) -> Population:
        """Every enrolled utterance embedding with its speaker (for calibration and AS-norm)."""
        with self._store.read() as session:
            return read_population(session)

    def speakers(self) -> list[Speaker]:
        """All speakers, by name."""
        with self._store.read() as session:
            return catalog.list_speakers(session)

    def speaker(self, name: str) -> Speaker:
        name = clean_name(name)
        with self._store.read() as session:
            row = catalog.require_speaker(session, name)
            return catalog.to_speaker(row, catalog.count_utterances(session, row.id))

    def utterances(self, name: str) -> list[Utterance]:
        """The enrolled clips of ``name``, oldest first."""
        name = clean_name(name)
        with self._store.read() as session:
            return catalog.list_utterances(session, name)

    # -- changes ---------------------------------------------------------

    def remove(self, name: str) -> Speaker:
        """Delete ``name`` with all their utterances and embeddings; return what was removed."""
        name = clean_name(name)
        with self._index.changing():
            with self._store.write() as session:
                row = catalog.require_speaker(session, name)
                removed = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
                session.delete(row)
                generation = catalog.bump_generation(session)
            self._index.apply(generation, lambda index: index.remove(removed.id))
        self._store.purge_deleted()
        return removed

    def remove_utterance(self, utterance_id: int) -> Speaker:
        """Delete one enrolled clip and its embedding; return its speaker, template recomputed.

        A speaker's last clip is not removed, since a speaker without clips has no
        voiceprint: that raises :class:`InputError`; remove the speaker instead.
        """
        with self._index.changing():
            with self._store.write() as session:
                row = catalog.require_utterance(session, utterance_id)
                owner = row.speaker
                left = catalog.count_utterances(session, owner.id) - 1
                if left < 1:
                    raise InputError(
                        f"clip #{utterance_id} is the only one of {owner.name!r}; remove the "
                        f"speaker instead (`speakerdb remove {shlex.quote(owner.name)}`)"
                    )
                session.delete(row)
                session.flush()
                template = catalog.refresh_template(session, owner)
                generation = catalog.bump_generation(session)
                speaker = catalog.to_speaker(owner, left)
            self._index.apply(generation, lambda index: index.upsert(speaker.id, template))
        self._store.purge_deleted()
        log.info("removed clip #%d of %r", utterance_id, speaker.name)
        return speaker

    def rename(self, old: str, new: str) -> Speaker:
        """Give speaker ``old`` the name ``new``; refuse when ``new`` is taken."""
        old, new = clean_name(old), clean_name(new)
        with self._store.write() as session:
            row = catalog.require_speaker(session, old)
            if new != old and catalog.find_speaker(session, new) is not None:
                raise DuplicateSpeaker(f"a speaker named {new!r} exists already; pick another name")
            admit_name(new, new, set(catalog.speaker_names(session).values()) - {old})
            row.name = new
            catalog.bump_counter(session, "names_version")  # for the index's cache of names
            session.flush()
            return catalog.to_speaker(row, catalog.count_utterances(session, row.id))

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
        return self._index.snapshot()[0]

    def rebuild_index(self) -> int:
        """Rebuild the index file from the database; return the number of speakers in it."""
        return self._index.rebuild()

    def index_choice(self) -> IndexChoice:
        """The index setting (``auto``, ``flat``, ``ivf``) and the index it gives now."""
        return self._index.choice()

    def set_index_kind(self, kind: str, *, ivf_from: int | None = None) -> IndexChoice:
        """Store the index setting (see :mod:`speakerdb.storage._indexkind`) and rebuild by
        it if needed.

        ``ivf_from`` sets where ``auto`` switches to IVF (left ``None``: kept as stored).
        """
        return self._index.configure(kind, ivf_from)

    def info(self) -> DatabaseInfo:
        """Path, model, threshold, counts, schema revision and index state."""
        with self._store.read() as session:
            n_speakers = len(catalog.list_speakers(session))
            n_utterances = catalog.count_utterances(session)
            generation = int(catalog.get_setting(session, "generation") or 0)
        return self._describe(self.path, self._stored, (n_speakers, n_utterances), generation)

    # -- internals -------------------------------------------------------

    def _embed(self, clips: Sequence[Clip]) -> np.ndarray:
        return embed_clips(self.encoder(), clips)

    def _index_dim(self) -> int:
        # Before the first enrollment the database records no encoder; use the loaded one.
        if self._stored is not None:
            return self._stored.dim
        return self._encoder.info.dim if self._encoder is not None else 1


def _sqlite_sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
