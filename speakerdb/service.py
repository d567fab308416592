"""The :class:`SpeakerDB` facade: enroll, identify, verify, list and remove speakers."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from sqlalchemy.orm import Session

from . import catalog
from .audio import Clip, clip_from_array, load_clip
from .config import (
    DEFAULT_DB,
    DEFAULT_MODEL,
    ENV_DB,
    ENV_MODEL,
    ENV_THRESHOLD,
    default_threshold,
    parse_threshold,
)
from .encoder import Encoder, load_encoder, normalize_model_name
from .errors import (
    DatabaseError,
    DuplicateSpeaker,
    DuplicateUtterance,
    InputError,
    ModelMismatch,
)
from .index import IndexFileError, SpeakerIndex, index_path_for, read_header
from .names import clean_name
from .schema import current_revision, ensure_schema
from .schema import upgrade as upgrade_schema
from .store import SpeakerRow, Store, UtteranceRow, from_blob, utcnow
from .templates import l2_normalize
from .types import (
    DatabaseInfo,
    EncoderInfo,
    Enrollment,
    Identification,
    Match,
    Speaker,
    Utterance,
    Verification,
)

__all__ = ["ClipInput", "SpeakerDB"]

log = logging.getLogger(__name__)

#: A clip: a file path, ``(samples, sample_rate)``, or an already decoded :class:`Clip`.
ClipInput = Union[str, "os.PathLike[str]", tuple[np.ndarray, int], Clip]


class SpeakerDB:
    """A speaker database on one SQLite file, with its FAISS index beside it.

    Options follow the precedence in :mod:`speakerdb.config`: argument, then
    ``SPEAKERDB_*`` environment variable, then the value stored in the
    database, then the default. The encoder is loaded on first use and kept
    for the life of the object. Queries may run from several threads at once.

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
    ) -> None:
        target = path or os.environ.get(ENV_DB) or DEFAULT_DB
        self._store = Store.open(target, create=create)
        try:
            self._setup(model, threshold, revision, local_files_only, cache_dir, encoder)
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
        self._model_arg = _requested_model(model, encoder)
        self._load_options = {
            "revision": revision,
            "local_files_only": local_files_only,
            "cache_dir": cache_dir,
        }
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._index: SpeakerIndex | None = None
        self._index_generation = -1
        self._index_lock = threading.RLock()
        # An explicit model is checked now; one from SPEAKERDB_MODEL only when the
        # encoder is needed, so that listing or renaming never depends on it.
        if model is not None or encoder is not None:
            self._check_model_name()

    @staticmethod
    def upgrade(path: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
        """Migrate an existing database to this version's schema; return ``(before, after)``."""
        target = Path(path or os.environ.get(ENV_DB) or DEFAULT_DB).expanduser()
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

    # -- settings --------------------------------------------------------

    def threshold(self) -> tuple[float, str]:
        """The decision threshold and where it came from (argument, env, database or default)."""
        if self._threshold_arg is not None:
            return self._threshold_arg, "argument"
        env = os.environ.get(ENV_THRESHOLD)
        if env:
            return parse_threshold(env, ENV_THRESHOLD), "environment"
        with self._store.read() as session:
            stored = catalog.get_setting(session, "threshold")
        if stored is not None:
            return float(stored), "database"
        return default_threshold(self.model), f"default for {self.model}"

    def set_threshold(self, value: float) -> float:
        """Store ``value`` as this database's threshold (a cosine in [-1, 1])."""
        number = parse_threshold(value, "set-threshold")
        with self._store.write() as session:
            catalog.set_setting(session, "threshold", repr(number))
        return number

    # -- enrollment ------------------------------------------------------

    def enroll(self, name: str, clips: Sequence[ClipInput]) -> Enrollment:
        """Create ``name`` or add clips to it; all clips of the call are enrolled, or none.

        Raises :class:`AudioError` for an unusable clip, :class:`DuplicateUtterance`
        when the same audio is enrolled already, :class:`InvalidName` for a bad name.
        """
        name = clean_name(name)
        if not clips:
            raise InputError(f"no clips given to enroll {name!r}")
        decoded = [to_clip(c) for c in clips]
        _refuse_repeats(decoded)
        with self._store.read() as session:
            self._refuse_enrolled(session, decoded)
        encoder = self.encoder()
        # Normalised again so that stored vectors have unit norm whatever the encoder.
        embeddings = l2_normalize(encoder.encode([c.samples for c in decoded]))
        with self._store.write() as session:
            self._record_encoder(session, encoder.info)
            self._refuse_enrolled(session, decoded)
            row, created = _get_or_create(session, name)
            added = catalog.add_utterances(session, row, decoded, embeddings)
            template = catalog.refresh_template(session, row)
            generation = catalog.bump_generation(session)
            speaker = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
            result = Enrollment(
                speaker, tuple(catalog.to_utterance(u, name) for u in added), created
            )
        self._apply(generation, lambda index: index.upsert(speaker.id, template))
        log.info("enrolled %d clip(s) for %r", len(added), name)
        return result

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]:
        """Map the audio hash of each clip that is enrolled already to its speaker's name."""
        with self._store.read() as session:
            return catalog.existing_hashes(session, [c.sha256 for c in clips])

    # -- queries ---------------------------------------------------------

    def embed(self, clips: Sequence[ClipInput]) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of the clips, with this database's encoder."""
        decoded = [to_clip(c) for c in clips]
        return self.encoder().encode([c.samples for c in decoded])

    def identify(
        self, clip: ClipInput, *, top_k: int = 5, threshold: float | None = None
    ) -> Identification:
        """Top-``k`` speakers for ``clip`` by cosine; "unknown" below the threshold."""
        return self.identify_many([clip], top_k=top_k, threshold=threshold)[0]

    def identify_many(
        self, clips: Sequence[ClipInput], *, top_k: int = 5, threshold: float | None = None
    ) -> list[Identification]:
        """:meth:`identify` for several clips, embedding and searching them together."""
        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        limit = self._threshold_for(threshold)
        decoded = [to_clip(c) for c in clips]
        queries = self.encoder().encode([c.samples for c in decoded])
        index = self.current_index()
        names = self._names()
        scores, ids = index.search(queries, top_k)
        return [
            Identification(clip.source, _matches(row_scores, row_ids, names), limit)
            for clip, row_scores, row_ids in zip(decoded, scores, ids, strict=True)
        ]

    def verify(self, name: str, clip: ClipInput, *, threshold: float | None = None) -> Verification:
        """Accept or reject the claim that ``clip`` is ``name``, by cosine against the template."""
        name = clean_name(name)
        limit = self._threshold_for(threshold)
        with self._store.read() as session:
            template = from_blob(catalog.require_speaker(session, name).template)
        decoded = to_clip(clip)
        query = self.encoder().encode([decoded.samples])[0]
        return Verification(name, decoded.source, float(np.dot(query, template)), limit)

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
            row = catalog.require_speaker(session, name)
            return [catalog.to_utterance(u, row.name) for u in sorted(row.utterances, key=_by_id)]

    # -- changes ---------------------------------------------------------

    def remove(self, name: str) -> Speaker:
        """Delete ``name`` with all their utterances and embeddings; return what was removed."""
        name = clean_name(name)
        with self._store.write() as session:
            row = catalog.require_speaker(session, name)
            removed = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
            session.delete(row)
            generation = catalog.bump_generation(session)
        self._apply(generation, lambda index: index.remove(removed.id))
        return removed

    def rename(self, old: str, new: str) -> Speaker:
        """Give speaker ``old`` the name ``new``; refuse when ``new`` is taken."""
        old, new = clean_name(old), clean_name(new)
        with self._store.write() as session:
            row = catalog.require_speaker(session, old)
            if new != old and catalog.find_speaker(session, new) is not None:
                raise DuplicateSpeaker(f"a speaker named {new!r} exists already; pick another name")
            row.name = new
            session.flush()
            return catalog.to_speaker(row, catalog.count_utterances(session, row.id))

    # -- encoder and index ----------------------------------------------

    def encoder(self) -> Encoder:
        """The encoder, loaded on first use and checked against the database's."""
        with self._encoder_lock:
            if self._encoder is None:
                self._check_model_name()
                self._encoder = load_encoder(self.model, **self._encoder_options())
            if self._stored is not None:
                _check_same_encoder(self.path, self._stored, self._encoder.info)
            return self._encoder

    def current_index(self) -> SpeakerIndex:
        """The FAISS index, agreeing with the database; loaded or rebuilt when stale."""
        with self._index_lock:
            with self._store.read() as session:
                generation = int(catalog.get_setting(session, "generation") or 0)
                db_uuid = catalog.get_setting(session, "uuid") or ""
            if self._index is None or self._index_generation != generation:
                self._index = self._load_or_rebuild(generation, db_uuid)
                self._index_generation = generation
            return self._index

    def rebuild_index(self) -> int:
        """Rebuild the index file from the database; return the number of speakers in it."""
        with self._index_lock:
            with self._store.read() as session:
                generation = int(catalog.get_setting(session, "generation") or 0)
                db_uuid = catalog.get_setting(session, "uuid") or ""
            self._index = self._rebuild(generation, db_uuid)
            self._index_generation = generation
            return len(self._index)

    def info(self) -> DatabaseInfo:
        """Path, model, threshold, counts, schema revision and index state."""
        threshold, source = self.threshold()
        with self._store.read() as session:
            n_speakers = len(catalog.list_speakers(session))
            n_utterances = catalog.count_utterances(session)
            generation = int(catalog.get_setting(session, "generation") or 0)
        return DatabaseInfo(
            path=str(self.path.resolve()),
            encoder=self._stored,
            threshold=threshold,
            threshold_source=source,
            n_speakers=n_speakers,
            n_utterances=n_utterances,
            schema_revision=current_revision(self._store),
            index_path=str(self.index_path),
            index_state=_index_state(self.index_path, generation),
        )

    # -- internals -------------------------------------------------------

    def _threshold_for(self, threshold: float | None) -> float:
        if threshold is not None:
            return parse_threshold(threshold, "argument")
        return self.threshold()[0]

    def _check_model_name(self) -> None:
        stored, requested = self._stored, self._model_arg
        if stored is not None and requested is not None and stored.model != requested:
            raise ModelMismatch(_mismatch_message(self.path, stored, requested))

    def _encoder_options(self) -> dict[str, Any]:
        options = dict(self._load_options)
        stored = self._stored
        revision = stored.revision if stored is not None and stored.model == self.model else None
        # Pin a hub model to the commit the database was built with.
        if options["revision"] is None and revision and not revision.startswith("sha256:"):
            options["revision"] = revision
        return options

    def _record_encoder(self, session: Session, info: EncoderInfo) -> None:
        stored = catalog.read_encoder(session)
        if stored is None:
            catalog.write_encoder(session, info)
            self._stored = info
        else:
            _check_same_encoder(self.path, stored, info)

    def _refuse_enrolled(self, session: Session, clips: Sequence[Clip]) -> None:
        known = catalog.existing_hashes(session, [c.sha256 for c in clips])
        for clip in clips:
            if clip.sha256 in known:
                raise DuplicateUtterance(
                    f"{clip.source or '<array>'}: this audio is enrolled already "
                    f"(speaker {known[clip.sha256]!r}); leave it out"
                )

    def _names(self) -> dict[int, str]:
        with self._store.read() as session:
            return {s.id: s.name for s in catalog.list_speakers(session)}

    def _apply(self, generation: int, change: Callable[[SpeakerIndex], None]) -> None:
        """Bring the index to ``generation`` after a committed write, cheaply when possible."""
        with self._index_lock:
            # An index built while the database was empty may not know the dimension yet.
            if (
                self._index is None
                or self._index_generation != generation - 1
                or self._index.dim != self._index_dim()
            ):
                # Start from the file as it was before this write. Should it be older
                # still, the rebuild already holds the change, and applying it again
                # (upsert or remove) is harmless.
                db_uuid = self._uuid()
                self._index = self._load_or_rebuild(generation - 1, db_uuid)
            change(self._index)
            self._index_generation = generation
            self._save_index()

    def _save_index(self) -> None:
        assert self._index is not None
        try:
            self._index.save(self.index_path, self._uuid(), self._index_generation)
        except OSError as exc:
            log.warning("could not write %s (%s); it will be rebuilt", self.index_path, exc)

    def _uuid(self) -> str:
        with self._store.read() as session:
            return catalog.get_setting(session, "uuid") or ""

    def _load_or_rebuild(self, generation: int, db_uuid: str) -> SpeakerIndex:
        try:
            index, header = SpeakerIndex.load(self.index_path)
        except IndexFileError as exc:
            reason = str(exc)
        else:
            if (header.db_uuid, header.generation) == (db_uuid, generation):
                return index
            reason = (
                f"{self.index_path}: stale (generation {header.generation}, database {generation})"
            )
        if generation > 0 or self.index_path.exists():
            log.warning("index %s; rebuilding it from the database", reason)
        return self._rebuild(generation, db_uuid)

    def _index_dim(self) -> int:
        # Before the first enrollment the database records no encoder; use the loaded one.
        if self._stored is not None:
            return self._stored.dim
        return self._encoder.info.dim if self._encoder is not None else 1

    def _rebuild(self, generation: int, db_uuid: str) -> SpeakerIndex:
        with self._store.read() as session:
            ids, blobs = catalog.all_templates(session)
        dim = self._index_dim()
        vectors = (
            np.stack([from_blob(b) for b in blobs]) if blobs else np.zeros((0, dim), np.float32)
        )
        index = SpeakerIndex(dim, ids, vectors)
        if generation > 0 or blobs:
            try:
                index.save(self.index_path, db_uuid, generation)
            except OSError as exc:
                log.warning("could not write %s (%s); searching from memory", self.index_path, exc)
        return index


def to_clip(item: ClipInput) -> Clip:
    """Decode a path or ``(samples, rate)`` pair; pass a :class:`Clip` through."""
    if isinstance(item, Clip):
        return item
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InputError("an in-memory clip is a (samples, sample_rate) pair")
        return clip_from_array(item[0], int(item[1]))
    if isinstance(item, (str, os.PathLike)):
        return load_clip(item)
    raise InputError(f"cannot use {type(item).__name__} as a clip; pass a path or (samples, rate)")


def _requested_model(model: str | None, encoder: Encoder | None) -> str | None:
    if encoder is not None:
        return encoder.info.model
    chosen = model or os.environ.get(ENV_MODEL) or None
    return normalize_model_name(chosen) if chosen else None


def _refuse_repeats(clips: Iterable[Clip]) -> None:
    seen: dict[str, str] = {}
    for clip in clips:
        label = clip.source or "<array>"
        if clip.sha256 in seen:
            raise DuplicateUtterance(f"{label}: same audio as {seen[clip.sha256]}; give it once")
        seen[clip.sha256] = label


def _get_or_create(session: Session, name: str) -> tuple[SpeakerRow, bool]:
    row = catalog.find_speaker(session, name)
    if row is not None:
        return row, False
    row = SpeakerRow(name=name, template=b"", created_at=utcnow())
    session.add(row)
    session.flush()
    return row, True


def _matches(scores: np.ndarray, ids: np.ndarray, names: dict[int, str]) -> tuple[Match, ...]:
    return tuple(
        Match(names[int(i)], float(s)) for s, i in zip(scores, ids, strict=True) if int(i) in names
    )


def _check_same_encoder(path: Path, stored: EncoderInfo, actual: EncoderInfo) -> None:
    same = stored.model == actual.model and stored.dim == actual.dim
    if same and stored.revision and actual.revision and stored.revision != actual.revision:
        same = False
    if not same:
        raise ModelMismatch(_mismatch_message(path, stored, actual.model, actual.revision))


def _mismatch_message(
    path: Path, stored: EncoderInfo, model: str, revision: str | None = None
) -> str:
    got = f"{model}@{revision}" if revision else model
    return (
        f"{path} holds {stored.dim}-d embeddings of {stored.model}"
        f"{'@' + stored.revision if stored.revision else ''}, not of {got}; "
        f"use --model {stored.model}, or another --db for the new model"
    )


def _index_state(path: Path, generation: int) -> str:
    try:
        header = read_header(path)
    except IndexFileError as exc:
        return f"will be rebuilt ({exc})" if generation else "empty"
    if header.generation != generation:
        return f"stale (generation {header.generation}, database {generation}); will be rebuilt"
    return f"up to date ({header.count} speakers)"


def _by_id(row: UtteranceRow) -> int:
    return row.id
