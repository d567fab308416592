"""The :class:`SpeakerDB` facade: one object that composes a database's services.

It holds no SQL, index or model code, and no logic of its own: the storage
(:mod:`speakerdb.storage`) keeps the speakers, the services (:mod:`speakerdb.services`,
built together by :mod:`speakerdb.services._opening`) enroll, query and keep the
settings, and each method documents the contract and delegates. Old member names
still work through :mod:`speakerdb._compat`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import _compat
from .audio._decode import ClipInput
from .config import database_location
from .services._batch import BatchReport, ManifestRow
from .services._enroll_metadata import Metadata
from .services._opening import open_services
from .storage import upgrade_storage

if TYPE_CHECKING:
    from .decision._calibration import Calibration
    from .decision._countermeasure import Countermeasure
    from .diarization import SegmentOptions
    from .encoders._protocol import Encoder
    from .errors import SpeakerDBError
    from .services._raybatch import RayOptions
    from .services._segments import LiveSegments
    from .storage import Storage
    from .types import (
        ClearedThreshold,
        DatabaseInfo,
        DecisionPolicy,
        Enrollment,
        Identification,
        Segment,
        Speaker,
        Utterance,
        Verification,
    )

__all__ = ["ClipInput", "SpeakerDB"]


class SpeakerDB:
    """A speaker database on one SQLite file, with its FAISS index beside it, or on
    any other :class:`~speakerdb.storage.Storage` given as ``storage``.

    Options follow the precedence in :mod:`speakerdb.config`: argument, then
    ``SPEAKERDB_*`` environment variable, then the value stored in the
    database, then the default. The encoder is loaded on first use and kept
    for the life of the object. Queries may run from several threads at once.
    ``backend`` (else ``SPEAKERDB_BACKEND``) chooses how an x-vector model runs:
    ``auto``, ``onnx``, ``torch``, ``openvino-bf16`` or ``torch-bf16``
    (:mod:`speakerdb.encoders._backends`).

    ``replay_window`` (else ``SPEAKERDB_REPLAY_WINDOW``, else the stored
    ``guards.set_replay_window``, else 10 minutes) is how long decided queries are
    remembered by the replay check; 0 remembers none (enrolled clips are always
    checked). ``countermeasure`` (a registered name or a
    :class:`~speakerdb.decision.Countermeasure`; else ``SPEAKERDB_COUNTERMEASURE``, else
    the stored ``guards.set_countermeasure``, else none) judges every query clip: a spoof
    is refused as ``replay``. ``speech_gate`` (else ``SPEAKERDB_SPEECH_GATE``, else on) refuses
    enrollment clips that are not speech; ``False`` is for synthetic test voices.
    ``audio_key`` (else ``SPEAKERDB_AUDIO_KEY``) is the secret that seals the enrollment
    audio kept with ``keep_audio`` and opens it for ``lifecycle.reembed``
    (:mod:`speakerdb.services._sealing`).

    A clip (:data:`~speakerdb.audio.ClipInput`) is a file path, the bytes of an
    audio file or a binary file object holding one, a ``(samples, rate)`` pair, or
    a decoded :class:`~speakerdb.audio.Clip`; :mod:`speakerdb.audio` checks each.

    A missing file is created by the first write (an enrollment, ``set_threshold``,
    ...), owner-only; until then queries (``speakers``, ``info``, ``identify``,
    ``verify``, ...) raise :class:`DatabaseError` naming the fix, so a misspelt path is
    neither read as an empty database nor created. ``create=False`` refuses a missing
    file at once. A file whose first write never committed (a process killed during
    its first enrollment) counts as missing: the next write completes it.

    ``storage`` (for example :class:`speakerdb.storage.MemoryStorage`) replaces
    ``path`` and ``create``; the database then owns it and closes it.

    Administration lives in six attributes: :attr:`index` (the derived search
    index), :attr:`audit` (the optional log of decisions), :attr:`lifecycle`
    (metadata, groups, backups, retention, removing one clip), :attr:`keys` (the keys of
    the HTTP service), :attr:`cohort` (outside voices for AS-norm and calibration) and
    :attr:`guards` (the replay window and the countermeasure).

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
        replay_window: int | str | None = None,
        speech_gate: bool | None = None,
        countermeasure: str | Countermeasure | None = None,
        replay_check: bool | None = None,
        audio_key: bytes | str | None = None,
    ) -> None:
        options = {"revision": revision, "local_files_only": local_files_only}
        options |= {"cache_dir": cache_dir, "backend": backend}
        services = open_services(
            path,
            storage,
            create=create,
            model=model,
            encoder=encoder,
            threshold=threshold,
            load_options=options,
            replay_window=replay_window,
            countermeasure=countermeasure,
            speech_gate=speech_gate,
            replay_check=replay_check,
            audio_key=audio_key,
        )
        self._services = services
        self._storage, self._slot = services.storage, services.slot
        self._settings, self._matches = services.settings, services.matches
        self._enrolling, self._querying = services.enrolling, services.querying
        #: The optional log of identify and verify decisions (off by default).
        self.audit = services.audit
        #: The cohort of outside voices: AS-norm's cohort and calibration's strangers.
        self.cohort = services.cohort
        #: The replay window and the countermeasure, which refuse clips before scores decide.
        self.guards = services.guards
        #: The derived search index: rebuild, choose flat or IVF.
        self.index = services.index
        #: The lifecycle of voiceprints: metadata, groups, backups, retention, removals.
        self.lifecycle = services.lifecycle
        #: The keys of the HTTP service (``speakerdb serve``).
        self.keys = services.keyring

    if not TYPE_CHECKING:  # a type checker keeps flagging misspelt and old names

        def __getattr__(self, name: str) -> Any:
            # Only reached for names the object does not have: the deprecated ones.
            return _compat.old_member(self, name)

    @staticmethod
    def upgrade(path: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
        """Migrate an existing database to this version's schema; return ``(before, after)``."""
        return upgrade_storage(database_location(path))

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> SpeakerDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, *, discard_if_empty: bool = False) -> None:
        """Release the database connections. The object cannot be used afterwards.

        With ``discard_if_empty``, also delete the database files if this object
        created them and nothing was enrolled: a first enrollment that failed leaves
        no empty database behind.
        """
        self._services.close(discard_if_empty=discard_if_empty)

    @property
    def path(self) -> Path | str:
        """The database file, or the PostgreSQL URL without its password."""
        return self._storage.path

    @property
    def model(self) -> str:
        """The model in use: argument or ``SPEAKERDB_MODEL``, else the stored one, else default."""
        return self._slot.model

    def encoder(self) -> Encoder:
        """The encoder, loaded on first use and checked against the database's."""
        return self._slot.encoder()

    def info(self) -> DatabaseInfo:
        """Path, model, threshold, counts, schema revision and index state."""
        return self._settings.describe()

    # -- enrolling (speakerdb.services._enrolling) ---------------------------

    def enroll(
        self,
        name: str,
        clips: Sequence[ClipInput],
        *,
        force: bool = False,
        external_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        expires_at: datetime | date | str | None = None,
        watchlist: bool = False,
        keep_audio: bool = False,
        groups: Sequence[str] = (),
    ) -> Enrollment:
        """Create ``name`` or add clips to it; all clips of the call are enrolled, or none.

        ``external_id`` (the id another system knows them by) and ``attributes`` (JSON
        values, merged into the speaker's; a key given ``None`` is deleted) are set in the
        same transaction, with ``expires_at`` (a future date: the voiceprint is deleted
        then), and ``watchlist`` (a voice never to admit: see
        :mod:`speakerdb.services._watchlist`), and ``groups`` (group names, made if new:
        see :mod:`speakerdb.services._groups`); an external id is changed by
        ``lifecycle.set_metadata``. ``keep_audio`` keeps the clips' audio, encrypted with
        the ``audio_key``, for ``lifecycle.reembed`` (:class:`InputError` without a key).
        Raises :class:`AudioError` for an unusable clip, :class:`DuplicateUtterance`
        when the same audio is enrolled already, :class:`InvalidName` for a bad name,
        :class:`EnrollmentRefused` when a quality gate refuses
        (:mod:`speakerdb.services._quality`; ``force`` enrolls anyway, and the issues
        are returned with the result).
        """
        metadata = Metadata.given(external_id, attributes, expires_at, watchlist, groups)
        return self._enrolling.enroll(
            name, clips, force=force, metadata=metadata, keep_audio=keep_audio
        )

    def enroll_many(
        self,
        groups: Iterable[tuple[str, Sequence[ClipInput]]],
        *,
        force: bool = False,
        keep_audio: bool = False,
    ) -> Iterator[tuple[str, Enrollment | SpeakerDBError]]:
        """Enroll each ``(name, clips)`` as :meth:`enroll` does, several per transaction.

        Yields ``(name, enrollment)`` once the enrollment is committed, or ``(name,
        error)`` for a speaker that was not enrolled; the others go on. ``groups``
        is consumed lazily, so it may decode the next speaker's clips while this
        one is embedded (:func:`speakerdb.services._batch.enroll_batch` does).
        """
        return self._enrolling.enroll_many(groups, force=force, keep_audio=keep_audio)

    def enroll_batch(
        self,
        rows: Iterable[ManifestRow],
        progress: Callable[[int], None] | None = None,
        *,
        force: bool = False,
        ray: RayOptions | None = None,
        keep_audio: bool = False,
    ) -> BatchReport:
        """Enroll the rows of a manifest (:func:`speakerdb.services.read_manifest`), grouped
        by speaker; a clip that fails is reported and the others go on. The next
        speaker's clips are decoded while this one is embedded; ``progress(n)`` is
        called as each ``n`` clips are done (:mod:`speakerdb.services._batch`).

        With ``ray``, Ray Data actors decode and embed, one model copy each, and this
        process writes (:mod:`speakerdb.services._raybatch`); clips the database holds
        already are not embedded again, so an interrupted job resumes."""
        batch = self._services.enroll_batch
        return batch(rows, progress, force=force, ray=ray, keep_audio=keep_audio)

    # -- queries (speakerdb.services._querying) ------------------------------

    def embed(self, clips: Sequence[ClipInput]) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of the clips, with this database's encoder."""
        return self._querying.embed(clips)

    def identify(
        self,
        clip: ClipInput,
        *,
        top_k: int = 5,
        threshold: float | None = None,
        score_norm: str | None = None,
        replay_session: str | None = None,
        group: str | None = None,
    ) -> Identification:
        """Top-``k`` speakers for ``clip`` by cosine; "unknown" below the threshold.

        ``group`` confines the answer to that group's members (:class:`GroupNotFound`
        for an unknown one); scores still compare with the whole database
        (:mod:`speakerdb.services._groups`).

        ``score_norm`` (``"margin"``, ``"margin-duration"`` or ``"asnorm"``) decides by a
        normalised score for this query (default: see :meth:`policy`);
        :attr:`Match.normalized` holds it, and the result carries its policy.

        A clip that replays an enrolled clip, or a query decided within the replay window
        (``guards.set_replay_window``), gets ``outcome`` ``replay``
        (:mod:`speakerdb.services._replay`). ``replay_session`` names the caller's session:
        its own earlier queries (overlapping windows of one stream) are not replays.
        """
        return self._querying.identify_many(
            [clip], top_k, threshold, score_norm, replay_session, group
        )[0]

    def identify_many(
        self,
        clips: Sequence[ClipInput],
        *,
        top_k: int = 5,
        threshold: float | None = None,
        score_norm: str | None = None,
        replay_session: str | None = None,
        group: str | None = None,
    ) -> list[Identification]:
        """:meth:`identify` for several clips, embedding and searching them together."""
        return self._querying.identify_many(
            clips, top_k, threshold, score_norm, replay_session, group
        )

    def verify(
        self,
        name: str,
        clip: ClipInput,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
        replay_session: str | None = None,
        group: str | None = None,
    ) -> Verification:
        """Accept or reject the claim that ``clip`` is ``name``, by cosine against the template
        (or by a normalised score, as in :meth:`identify`); a replay is refused as there.
        With ``group``, a claimed speaker who is not its member is rejected (an answer,
        with the reason)."""
        return self._querying.verify(name, clip, threshold, score_norm, replay_session, group)

    # -- who spoke when (speakerdb.services._segments) -----------------------

    def segments(
        self,
        recording: ClipInput,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
        max_duration_s: float | None = None,
        options: SegmentOptions | None = None,
        progress: Callable[[float], None] | None = None,
        group: str | None = None,
    ) -> list[Segment]:
        """Who speaks when in ``recording``, by name: :class:`Segment` s in order of time.

        A voice that is not enrolled is ``unknown-1``, ``unknown-2``... (stable within
        the recording); no enrolled speaker is forced onto a voice. Voices are named by
        ``threshold`` and ``score_norm`` as :meth:`identify` has them; by default, by raw
        cosine at the model's voice threshold, not identify's
        (:func:`speakerdb.decision._policy.voice_policy`).
        Read in blocks, so memory stays bounded: recordings up to ``max_duration_s``
        (default 4 hours) are accepted; ``progress(seconds)`` is called as each block of
        it is done. With ``group``, voices are named after its members only. See
        :mod:`speakerdb.services._segments`.
        """
        segmenting = self._services.segmenting
        return segmenting.segments(
            recording, threshold, score_norm, options, max_duration_s, progress, group
        )

    def segments_stream(
        self,
        chunks: Iterable[np.ndarray],
        sample_rate: int,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
        max_duration_s: float | None = None,
        options: SegmentOptions | None = None,
        group: str | None = None,
    ) -> Iterator[Segment]:
        """:meth:`segments` of a live stream of sample ``chunks`` at ``sample_rate`` (any
        sizes; 1-D or ``(frames, channels)``): yields each segment once no later audio can
        change it (about 12 s after it ends, in 10 s blocks by default)."""
        live = self.segments_live(
            sample_rate,
            threshold=threshold,
            score_norm=score_norm,
            max_duration_s=max_duration_s,
            options=options,
            group=group,
        )
        return live.drain(chunks)

    def segments_live(
        self,
        sample_rate: int,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
        max_duration_s: float | None = None,
        options: SegmentOptions | None = None,
        group: str | None = None,
    ) -> LiveSegments:
        """:meth:`segments_stream` for audio pushed as it arrives (a WebSocket, a sound
        card callback): ``live.push(chunk)`` and, at the end, ``live.end()`` each return
        the segments settled meanwhile."""
        segmenting = self._services.segmenting
        return segmenting.live(sample_rate, threshold, score_norm, options, max_duration_s, group)

    # -- the speakers ----------------------------------------------------

    def speakers(self) -> list[Speaker]:
        """All speakers, by name."""
        return self._services.roster.speakers()

    def speaker(self, name: str) -> Speaker:
        """Speaker ``name``; :class:`SpeakerNotFound` if there is none."""
        return self._services.roster.speaker(name)

    def utterances(self, name: str) -> list[Utterance]:
        """The enrolled clips of ``name``, oldest first."""
        return self._services.roster.utterances(name)

    def rename(self, old: str, new: str) -> Speaker:
        """Give speaker ``old`` the name ``new``; refuse when ``new`` is taken."""
        return self._services.roster.rename(old, new)

    def remove(self, name: str, *, purge_audit: bool = False) -> Speaker:
        """Delete ``name`` with all their utterances and embeddings; return what was removed.

        Their audit entries name them ``removed-<id>`` afterwards, or are deleted with
        ``purge_audit`` (:mod:`speakerdb.services._retention`)."""
        return self.lifecycle.remove(name, purge_audit=purge_audit)

    # -- decisions (speakerdb.services._settings) ----------------------------

    def policy(
        self,
        threshold: float | None = None,
        score_norm: str | None = None,
        *,
        operation: str = "identify",
    ) -> DecisionPolicy:
        """How an ``operation`` (``"identify"`` or ``"verify"``) query with these options
        would be decided: the score, its threshold and where that came from
        (:mod:`speakerdb.decision._policy` has the precedence), at the number of speakers
        enrolled now (identify's default threshold depends on it). Where identify's
        default falls with the query's duration, ``threshold`` is the bar of a 0.5 s
        query and ``duration_fall`` says how it falls; each identify result's policy has
        the bar its clip was decided at."""
        return self._settings.policy_now(threshold, score_norm, operation)

    @overload
    def set_threshold(
        self, value: float, *, score_norm: str | None = None, operation: str = "both"
    ) -> float: ...

    @overload
    def set_threshold(
        self, value: None, *, score_norm: str | None = None, operation: str = "both"
    ) -> tuple[ClearedThreshold, ...]: ...

    def set_threshold(
        self, value: float | None, *, score_norm: str | None = None, operation: str = "both"
    ) -> float | tuple[ClearedThreshold, ...]:
        """Store ``value`` as the threshold of ``operation`` (``"identify"``, ``"verify"``
        or ``"both"``) for ``score_norm`` scores (``"none"``: a cosine in [-1, 1];
        ``"margin"``, ``"margin-duration"``, ``"asnorm"``), and decide by those scores
        from now on.

        Without ``score_norm`` the value is a threshold of the score the database decides
        by, which must be the cosine: a database that decides by a normalised score
        refuses it (:class:`InputError` naming both fixes).

        ``None`` removes the thresholds stored for ``operation`` instead (of ``score_norm``
        scores, else of every score), so that the default decides, and returns each one
        removed (:class:`~speakerdb.types.ClearedThreshold`); the deciding score stays."""
        if value is None:
            return self._settings.clear_threshold(score_norm=score_norm, operation=operation)
        return self._settings.set_threshold(value, score_norm=score_norm, operation=operation)

    def set_score_norm(self, mode: str, *, top_n: int | None = None) -> tuple[str, int]:
        """Decide this database's queries by ``"margin-duration"``, ``"margin"``, ``"asnorm"``
        or ``"none"`` (raw cosine) scores; return the mode and AS-norm's cohort size."""
        return self._settings.set_score_norm(mode, top_n=top_n)

    def calibrate(
        self,
        *,
        target_far: float | None = None,
        trials: str | os.PathLike[str] | None = None,
        score_norm: str | None = None,
        apply: bool = True,
    ) -> Calibration:
        """Choose a threshold from the enrollments, or from a labelled trial list, and store
        it unless ``apply`` is false (:mod:`speakerdb.decision._calibration`); where it keeps
        a default, the threshold stored before is removed (the result's ``cleared``)."""
        return self._settings.calibrate(
            self._querying, target_far=target_far, trials=trials, score_norm=score_norm, apply=apply
        )
