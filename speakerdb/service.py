"""The :class:`SpeakerDB` facade: enroll, identify, verify, list and remove speakers."""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from sqlalchemy.orm import Session

from . import catalog
from .asnorm import DEFAULT_TOP_N
from .audio import Clip, clip_from_array, load_clip
from .audit import AuditLog
from .calibration import Calibration
from .config import (
    DEFAULT_ASNORM_THRESHOLD,
    DEFAULT_DB,
    DEFAULT_MARGIN_THRESHOLDS,
    DEFAULT_MODEL,
    DEFAULT_THRESHOLDS,
    ENV_DB,
    ENV_MODEL,
    ENV_THRESHOLD,
    SCORE_NORMS,
    default_threshold,
    parse_threshold,
)
from .encoder import Encoder, load_encoder, normalize_model_name
from .errors import (
    AudioError,
    DatabaseError,
    DuplicateSpeaker,
    DuplicateUtterance,
    EnrollmentRefused,
    InputError,
    ModelMismatch,
)
from .frontend import encode_windowed
from .index import IndexFileError, SpeakerIndex, index_path_for, read_header
from .indexsync import IndexSync
from .names import clean_name
from .population import Population, read_population
from .schema import current_revision, ensure_schema
from .schema import upgrade as upgrade_schema
from .store import SpeakerRow, Store, UtteranceRow, from_blob, utcnow
from .templates import l2_normalize
from .types import (
    AuditEntry,
    AuditSettings,
    DatabaseInfo,
    EncoderInfo,
    Enrollment,
    Identification,
    Match,
    QualityIssue,
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
        self._index = IndexSync(self._store, self.index_path, self._index_dim)
        self._audit = AuditLog(self._store)
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

    def set_threshold(self, value: float, *, score_norm: str = "none") -> float:
        """Store ``value`` as this database's threshold: a cosine in [-1, 1], or, with
        ``score_norm`` ``"asnorm"`` or ``"margin"``, the threshold of those scores."""
        norm = _check_norm(score_norm)
        if norm == "none":
            number, key = parse_threshold(value, "set-threshold"), "threshold"
        else:
            number, key = _parse_norm_threshold(value), f"{norm}_threshold"
        with self._store.write() as session:
            catalog.set_setting(session, key, repr(number))
        return number

    def decision_threshold(self, score_norm: str | None = None) -> float:
        """The threshold queries use: the cosine one, or AS-norm's when that is on."""
        return self._threshold_for(None, self.score_norm(score_norm)[0])

    def score_norm(self, override: str | None = None) -> tuple[str, int]:
        """The score normalisation in use (see :mod:`speakerdb.scorenorm`) and AS-norm's
        cohort size.

        ``override`` (a per-query choice) wins over the database's setting.
        """
        with self._store.read() as session:
            stored = catalog.get_setting(session, "score_norm")
            top_n = int(catalog.get_setting(session, "asnorm_top_n") or DEFAULT_TOP_N)
        return _check_norm(override or stored or "none"), top_n

    def set_score_norm(self, mode: str, *, top_n: int | None = None) -> tuple[str, int]:
        """Use ``"asnorm"``, ``"margin"`` or ``"none"`` (raw cosine) for this database's queries."""
        mode = _check_norm(mode)
        if top_n is not None and top_n < 1:
            raise InputError(f"--top-n must be at least 1, got {top_n}")
        with self._store.write() as session:
            catalog.set_setting(session, "score_norm", mode)
            if top_n is not None:
                catalog.set_setting(session, "asnorm_top_n", str(top_n))
        return self.score_norm()

    def population(self) -> Population:
        """Every enrolled utterance embedding with its speaker (for calibration and AS-norm)."""
        with self._store.read() as session:
            return read_population(session)

    def calibrate(
        self,
        *,
        target_far: float | None = None,
        trials: str | os.PathLike[str] | None = None,
        score_norm: str | None = None,
        apply: bool = True,
    ) -> Calibration:
        """Choose a threshold from the enrollments, or from a labelled trial list, and store
        it unless ``apply`` is false; see :mod:`speakerdb.calibration`."""
        from .calibration import calibrate_database

        norm, top_n = self.score_norm(score_norm)
        result = calibrate_database(
            self, target_far=target_far, trials=trials, score_norm=norm, top_n=top_n
        )
        if apply:
            self.set_threshold(result.threshold, score_norm=norm)
        return result

    # -- enrollment ------------------------------------------------------

    def enroll(self, name: str, clips: Sequence[ClipInput], *, force: bool = False) -> Enrollment:
        """Create ``name`` or add clips to it; all clips of the call are enrolled, or none.

        Raises :class:`AudioError` for an unusable clip, :class:`DuplicateUtterance`
        when the same audio is enrolled already, :class:`InvalidName` for a bad name,
        :class:`EnrollmentRefused` when a quality gate refuses (:mod:`speakerdb.quality`;
        ``force`` enrolls anyway, and the issues are returned with the result).
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
        embeddings = l2_normalize(self._embed(decoded))
        issues = self._check_quality(name, decoded, embeddings, force)
        with self._index.changing():
            with self._store.write() as session:
                self._record_encoder(session, encoder.info)
                self._refuse_enrolled(session, decoded)
                row, created = _get_or_create(session, name)
                added = catalog.add_utterances(session, row, decoded, embeddings)
                template = catalog.refresh_template(session, row)
                generation = catalog.bump_generation(session)
                speaker = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
                result = Enrollment(
                    speaker, tuple(catalog.to_utterance(u, name) for u in added), created, issues
                )
            self._index.apply(generation, lambda index: index.upsert(speaker.id, template))
        log.info("enrolled %d clip(s) for %r", len(added), name)
        return result

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]:
        """Map the audio hash of each clip that is enrolled already to its speaker's name."""
        with self._store.read() as session:
            return catalog.existing_hashes(session, [c.sha256 for c in clips])

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

        ``score_norm`` (``"margin"`` or ``"asnorm"``) decides by a normalised score for
        this query (default: the database's setting, see :meth:`set_score_norm` and
        :mod:`speakerdb.scorenorm`); :attr:`Match.normalized` holds it.
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
        norm, top_n = self.score_norm(score_norm)
        limit = self._threshold_for(threshold, norm)
        decoded = [to_clip(c) for c in clips]
        queries = self._embed(decoded)
        if norm == "asnorm":
            from .scorenorm import normalized_matches

            ranked = normalized_matches(norm, queries, self.population(), top_n, top_k)
            pairs = zip(decoded, ranked, strict=True)
            return self._audit.log_identifications(
                [Identification(clip.source, matches, limit, norm) for clip, matches in pairs]
            )
        index, names = self._index.snapshot()
        # A margin needs the best other speaker: the top 2 hold it for every candidate.
        scores, ids = index.search(queries, max(top_k, 2) if norm == "margin" else top_k)
        found = [_matches(row, ids_row, names) for row, ids_row in zip(scores, ids, strict=True)]
        if norm == "margin":
            from .scorenorm import margin_matches

            found = [margin_matches(matches)[:top_k] for matches in found]
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
        norm, top_n = self.score_norm(score_norm)
        limit = self._threshold_for(threshold, norm)
        with self._store.read() as session:
            template = from_blob(catalog.require_speaker(session, name).template)
        decoded = to_clip(clip)
        query = self._embed([decoded])[0]
        score = float(np.dot(query, template))
        normalized = (
            None if norm == "none" else self._normalized_claim(norm, name, query, score, top_n)
        )
        result = Verification(name, decoded.source, score, limit, normalized, norm)
        return self._audit.log_verification(result)

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
        with self._index.changing():
            with self._store.write() as session:
                row = catalog.require_speaker(session, name)
                removed = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
                session.delete(row)
                generation = catalog.bump_generation(session)
            self._index.apply(generation, lambda index: index.remove(removed.id))
        self._purge_deleted()
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
        self._purge_deleted()
        log.info("removed clip #%d of %r", utterance_id, speaker.name)
        return speaker

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

    # -- audit log (see speakerdb.audit) --------------------------------

    def set_audit(
        self, enabled: bool, *, retention_days: int | None = None, max_rows: int | None = None
    ) -> AuditSettings:
        """Log identify and verify decisions, or stop (off by default; :mod:`speakerdb.audit`).

        Entries older than ``retention_days`` (default 30) or beyond the newest
        ``max_rows`` (default 100,000) are deleted now and at every later write.
        While on, a decision that cannot be logged raises :class:`DatabaseError`.
        """
        return self._audit.configure(enabled, retention_days, max_rows)

    def audit_settings(self) -> AuditSettings:
        return self._audit.settings()

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Logged decisions, newest first (at most ``limit``)."""
        return self._audit.entries(limit)

    def clear_audit(self) -> int:
        """Delete every logged decision; return how many there were."""
        count = self._audit.clear()
        self._purge_deleted()
        return count

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
        return self._index.snapshot()[0]

    def rebuild_index(self) -> int:
        """Rebuild the index file from the database; return the number of speakers in it."""
        return self._index.rebuild()

    def info(self) -> DatabaseInfo:
        """Path, model, threshold, counts, schema revision and index state."""
        threshold, source = self.threshold()
        norm = self.score_norm()[0]
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
            score_norm=norm,
            score_norm_threshold=None if norm == "none" else self.decision_threshold(norm),
        )

    # -- internals -------------------------------------------------------

    def _threshold_for(self, threshold: float | None, norm: str = "none") -> float:
        if norm != "none":
            if threshold is not None:
                return _parse_norm_threshold(threshold)
            with self._store.read() as session:
                stored = catalog.get_setting(session, f"{norm}_threshold")
            if stored is not None:
                return float(stored)
            if norm == "asnorm":
                return DEFAULT_ASNORM_THRESHOLD
            return DEFAULT_MARGIN_THRESHOLDS.get(self.model, default_threshold(self.model))
        if threshold is not None:
            return parse_threshold(threshold, "argument")
        return self.threshold()[0]

    def _normalized_claim(
        self, norm: str, name: str, query: np.ndarray, score: float, top_n: int
    ) -> float:
        from .scorenorm import margin_scores, population_scores

        if norm == "margin":
            index, names = self._index.snapshot()
            scores, ids = index.search(query[None, :], 2)
            found = _matches(scores[0], ids[0], names)
            others = [m.score for m in found if m.speaker != name][:1]
            return float(margin_scores(np.array([[score, *others]]))[0, 0])

        population = self.population()
        normalized = population_scores(norm, query[None, :], population, top_n)[1]
        return float(normalized[0, population.names.index(name)])

    def _check_quality(
        self, name: str, clips: Sequence[Clip], embeddings: np.ndarray, force: bool
    ) -> tuple[QualityIssue, ...]:
        from .quality import check_enrollment

        threshold, source = self.threshold()
        measured = source != f"default for {self.model}" or self.model in DEFAULT_THRESHOLDS
        issues = check_enrollment(
            name, clips, embeddings, self.population(), threshold, similarity_refuses=measured
        )
        refusals = [i.message for i in issues if i.refused]
        if refusals and not force:
            raise EnrollmentRefused(
                "; ".join(refusals) + " (--force, or force=True, enrolls anyway)", tuple(issues)
            )
        for issue in issues:
            log.info("enrollment quality: %s", issue.message)
        return tuple(issues)

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

    def _purge_deleted(self) -> None:
        """Leave no copy of deleted rows: secure_delete zeroes them in the database file,
        and a truncating checkpoint drops the older page images still in the WAL."""
        try:
            done = self._store.checkpoint()
        except DatabaseError as exc:  # the deletion itself is committed: say so, do not fail
            log.warning("%s; the WAL may keep old copies of the deleted data", exc)
            return
        if not done:
            log.warning(
                "%s-wal: other programs are reading the database, so it keeps old copies of "
                "the deleted data until the last of them closes it",
                self.path,
            )

    def _embed(self, clips: Sequence[Clip]) -> np.ndarray:
        """The encoder's embeddings; a clip whose embedding is not finite or is zero is refused.

        Such a vector would poison the database (stored vectors have unit norm) or a score.
        """
        samples = [c.samples for c in clips]
        vectors = np.asarray(encode_windowed(self.encoder(), samples), dtype=np.float32)
        for clip, vector in zip(clips, vectors, strict=True):
            if not np.all(np.isfinite(vector)) or not np.any(vector):
                peak = float(np.max(np.abs(clip.samples)))
                raise AudioError(
                    f"{clip.source or '<array>'}: the encoder gives no usable voiceprint for it "
                    f"(its peak level is {peak:.3g}, full scale is 1.0); check the recording"
                )
        return vectors

    def _refuse_enrolled(self, session: Session, clips: Sequence[Clip]) -> None:
        known = catalog.existing_hashes(session, [c.sha256 for c in clips])
        for clip in clips:
            if clip.sha256 in known:
                raise DuplicateUtterance(
                    f"{clip.source or '<array>'}: this audio is enrolled already "
                    f"(speaker {known[clip.sha256]!r}); leave it out"
                )

    def _index_dim(self) -> int:
        # Before the first enrollment the database records no encoder; use the loaded one.
        if self._stored is not None:
            return self._stored.dim
        return self._encoder.info.dim if self._encoder is not None else 1


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


def _check_norm(mode: str) -> str:
    if mode not in SCORE_NORMS:
        choices = ", ".join(SCORE_NORMS)
        raise InputError(f"score normalisation must be one of {choices}, got {mode!r}")
    return mode


def _parse_norm_threshold(value: float | str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"threshold is not a number: {value!r}") from None
    if not np.isfinite(number):
        raise InputError(f"threshold must be a finite number, got {value!r}")
    return number


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
