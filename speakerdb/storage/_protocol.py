"""The storage seam: what the facade and services need from a speaker database.

A :class:`Storage` hands out two kinds of transaction, each all-or-nothing:

* :meth:`Storage.read` gives a :class:`Snapshot`, one consistent view of the
  speakers, their utterances, the settings and the audit log.
* :meth:`Storage.change` gives a :class:`Change`, a snapshot that can also write.
  Everything done in it commits when the block ends, or nothing does when it
  raises. When it returns, :meth:`Storage.search` already agrees with it: a
  removed speaker is never found again, an enrolled one always is.

Names arrive checked (:func:`speakerdb._names.clean_name`); vectors arrive unit
length. How the data is kept (SQL, an index file, a counter that pairs them) is
the backend's business: the SQLite one is :mod:`speakerdb.storage.sqlite`, the
in-memory one :mod:`speakerdb.storage.memory`. Both pass
``tests/test_storage_contract.py``, and a new backend must too.

Every backend raises the same errors: :class:`~speakerdb.errors.SpeakerNotFound`
for an unknown name, :class:`~speakerdb.errors.GroupNotFound` for an unknown group,
:class:`~speakerdb.errors.DuplicateSpeaker` for a rename to
a taken name or an external id another speaker has,
:class:`~speakerdb.errors.DuplicateUtterance` for audio enrolled already,
:class:`~speakerdb.errors.InputError` for an unknown clip number or a
speaker's last clip, :class:`~speakerdb.errors.DatabaseError` when the store fails.

Backends with an index that can be administered (rebuilt, or switched between
exact and approximate search) implement :class:`~speakerdb.storage.IndexAdmin` as well
(:mod:`speakerdb.storage._admin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

# Only annotations need these: the fast read-only commands import this package.
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractContextManager
    from datetime import datetime
    from pathlib import Path

    import numpy as np

    from ..audio._decode import Clip
    from ..decision._population import CohortVoices, Population
    from ..types import (
        ApiKey,
        AuditEntry,
        EncoderInfo,
        Enrollment,
        Group,
        Match,
        Speaker,
        Tombstone,
        Utterance,
    )
    from ._kept import KeptAudio
    from ._marks import Found
    from ._prints import PrintHit, StoredPrint

__all__ = ["Change", "SearchFn", "Snapshot", "Storage", "StoreDescription"]


class StoreDescription(NamedTuple):
    """What ``info`` says of where a database is and how it is searched."""

    #: The database: a file's absolute path, or a server's URL without its password.
    location: str
    #: The search index: a file, a table, a cache in memory.
    search: str
    #: The index's state, in words ("up to date (12 speakers)", "stale; will be rebuilt").
    index_state: str


class SearchFn(Protocol):
    """``search(queries, k)``: for each query row, at most ``k`` raw-cosine matches, best first."""

    def __call__(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]: ...


class Snapshot(Protocol):
    """One read transaction: every method sees the same moment of the database."""

    def settings(self) -> dict[str, str]:
        """Every stored key/value setting."""
        ...

    def encoder(self) -> EncoderInfo | None:
        """The encoder whose embeddings are stored, or ``None`` before the first enrollment."""
        ...

    def speakers(self) -> list[Speaker]:
        """All speakers, by name."""
        ...

    def names(self) -> frozenset[str]:
        """Every speaker's name: cheaper than :meth:`speakers` (no clip counts)."""
        ...

    def speaker(self, name: str) -> Speaker:
        """Speaker ``name``; :class:`SpeakerNotFound` if there is none."""
        ...

    def speaker_by_external_id(self, external_id: str) -> Speaker | None:
        """The speaker whose external id is ``external_id`` (exactly), or ``None``."""
        ...

    def utterances(self, name: str) -> list[Utterance]:
        """The clips of speaker ``name``, oldest first; :class:`SpeakerNotFound` if none."""
        ...

    def template(self, name: str) -> np.ndarray:
        """The template (unit float32 vector) of ``name``; :class:`SpeakerNotFound` if none."""
        ...

    def counts(self) -> tuple[int, int]:
        """How many speakers and how many utterances are stored."""
        ...

    def version(self) -> int:
        """A number that grows with every change of templates (0 before the first)."""
        ...

    def enrolled_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        """Map each of ``hashes`` that is enrolled already to its speaker's name."""
        ...

    def population(self, names: Sequence[str] | None = None) -> Population:
        """Every utterance embedding (or those of ``names``), by speaker, oldest first."""
        ...

    def cohort(self) -> CohortVoices:
        """The cohort of outside voices, oldest first: embeddings of people never enrolled,
        which no search, identify or verify ever returns."""
        ...

    def cohort_hashes(self, hashes: Sequence[str]) -> frozenset[str]:
        """Those of ``hashes`` (audio SHA-256) that the cohort holds already."""
        ...

    def audit_entries(self, since: datetime, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` audit entries logged at ``since`` or later, newest first."""
        ...

    def print_candidates(
        self,
        keys: np.ndarray,
        since: datetime,
        limit: int,
        session: str | None = None,
        rows: int | None = None,
    ) -> list[PrintHit]:
        """The stored replay fingerprints (:mod:`speakerdb.storage._prints`) with the most
        of the ``(key, step)`` rows ``keys`` at one lag, most first (ties: the lower id),
        at most ``limit``, and none without a key in common: every enrolled clip's, and the
        queries' stored at ``since`` or later, except those stored with ``session`` (when
        given). With ``rows``, only the keys that
        :func:`~speakerdb.storage._prints.affordable_keys` picks count (the rarest, as many
        as fit within ``rows`` stored rows, counting every stored row of a key). The cost
        must follow the rows that share a key, not the number of stored fingerprints."""
        ...

    def print_counts(self, since: datetime) -> tuple[int, int]:
        """How many fingerprints are kept: enrolled clips', and queries' from ``since`` on."""
        ...

    def has_print_keys(self, low: int, high: int) -> bool:
        """Whether any stored fingerprint (in the window or not) has an index key ``low <=
        key < high``: the keys of one fingerprint version
        (:func:`~speakerdb.audio._fpindex.key_range`), whose lookup is skipped when none
        has: it must cost much less than a lookup."""
        ...

    def expired(self, now: datetime) -> list[str]:
        """The names of the speakers whose ``expires_at`` is ``now`` or earlier, by name."""
        ...

    def tombstones(self) -> list[Tombstone]:
        """Every opt-out tombstone, oldest first."""
        ...

    def idle(self, before: datetime) -> list[str]:
        """The names of the speakers whose ``last_match_at`` is before ``before``, by name
        (an indexed read: the cost follows those found, not the number of speakers)."""
        ...

    def kept_audio(self, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
        """The kept audio (:mod:`speakerdb.storage._kept`) of those of ``utterance_ids``
        that have some, by utterance id."""
        ...

    def kept_audio_count(self, name: str | None = None) -> int:
        """How many clips (of speaker ``name``, or of everyone) have their audio kept."""
        ...

    def watchlist(self) -> frozenset[str]:
        """The names of the speakers on the watchlist."""
        ...

    def find_tombstone(
        self, keys: tuple[str, str] | None, external_id: str | None
    ) -> Tombstone | None:
        """A tombstone with (when given) the name key ``keys[0]`` or the folded key
        ``keys[1]``, or the external id ``external_id``; ``None`` if there is none."""

    def groups(self) -> list[Group]:
        """Every group with its members, by name (a group stays, empty, when its last
        member leaves)."""
        ...

    def group_members(self, group: str) -> list[str]:
        """The names of ``group``'s members, sorted; :class:`GroupNotFound` if none."""
        ...

    def api_keys(self) -> list[ApiKey]:
        """The service's keys, by name."""
        ...

    def api_key(self, digest: str) -> ApiKey | None:
        """The key whose secret has the SHA-256 hex ``digest``, or ``None``."""
        ...

    def whole_clip_speakers(self) -> int:
        """How many speakers have a clip whose vector was embedded from the whole clip
        (:attr:`Utterance.spoken_margin_s` ``None``: enrolled before speakerdb cut clips
        to their words, or imported from an archive of then)."""
        ...


class Change(Snapshot, Protocol):
    """One write transaction: all of it commits when the block ends, or none of it."""

    def set_setting(self, key: str, value: str) -> None: ...

    def delete_setting(self, key: str) -> bool:
        """Delete setting ``key``; return whether it was stored. Later reads of the
        settings do not have it (a setting is absent, never empty)."""
        ...

    def record_encoder(self, info: EncoderInfo) -> None:
        """Record the encoder of the embeddings (once, before the first enrollment)."""
        ...

    def enroll(self, name: str, clips: Sequence[Clip], embeddings: np.ndarray) -> Enrollment:
        """Create ``name`` or add to it the ``clips`` with their ``(n, d)`` unit embeddings
        (each stored with its :attr:`~Clip.spoken_s` and :attr:`~Clip.spoken_margin_s`),
        and recompute its template; :class:`DuplicateUtterance` if a clip is enrolled already.
        The result's ``issues`` are empty: quality is not the storage's business."""
        ...

    def remove_speaker(self, name: str) -> Speaker:
        """Delete ``name`` with every utterance; return the speaker as it was."""
        ...

    def replace_vectors(
        self, utterance_ids: Sequence[int], clips: Sequence[Clip], embeddings: np.ndarray
    ) -> Speaker:
        """Give clips ``utterance_ids`` (one speaker's) the ``(n, d)`` unit ``embeddings``
        of ``clips``, the same audio embedded anew (each clip's :attr:`~Clip.spoken_s` and
        :attr:`~Clip.spoken_margin_s` stored with it; its id, source, kept audio and
        fingerprint stay), and recompute the template; return the speaker after.
        :class:`InputError` for an unknown clip, another speaker's, or other audio."""
        ...

    def remove_utterance(self, utterance_id: int) -> Speaker:
        """Delete one clip and recompute its speaker's template; return the speaker after.

        :class:`InputError` for an unknown clip, or for a speaker's only clip.
        """
        ...

    def rename(self, old: str, new: str) -> Speaker:
        """Rename speaker ``old``; :class:`DuplicateSpeaker` if ``new`` is taken."""
        ...

    def set_metadata(
        self,
        name: str,
        external_id: str | None,
        attributes: Mapping[str, Any],
        expires_at: datetime | None,
    ) -> Speaker:
        """Replace the external id, attributes and expiry (UTC) of ``name`` (checked by
        :mod:`speakerdb._metadata`); return the speaker after. :class:`DuplicateSpeaker`
        if another speaker has that external id."""
        ...

    def set_watchlist(self, name: str, on: bool) -> Speaker:
        """Put ``name`` on the watchlist or take them off it; return the speaker after."""
        ...

    def add_to_group(self, group: str, names: Sequence[str]) -> int:
        """Put the speakers ``names`` in ``group``, made if new; return how many joined
        (those in it already are not counted). :class:`SpeakerNotFound` for a name."""
        ...

    def remove_from_group(self, group: str, names: Sequence[str]) -> int:
        """Take ``names`` out of ``group``; return how many were in it.
        :class:`GroupNotFound`, :class:`SpeakerNotFound`."""
        ...

    def delete_group(self, group: str) -> Group:
        """Delete ``group`` (its members stay enrolled); return it as it was."""
        ...

    def rewrite_audit(self, name: str, replacement: str | None) -> int:
        """Replace ``name`` with ``replacement`` in every audit entry that claims or
        identifies it, or delete those entries when ``replacement`` is ``None``; return
        how many entries there were. Old copies of the rows are purged as for a removal."""
        ...

    def keep_audio(self, utterance_id: int, key_id: str, data: bytes) -> None:
        """Keep the sealed audio ``data`` of clip ``utterance_id`` (sealed by the key
        ``key_id``); it goes with the clip (deleted by :meth:`remove_utterance` and
        :meth:`remove_speaker`). :class:`InputError` for an unknown clip."""
        ...

    def record_matches(self, names: Sequence[str], when: datetime, older_than: datetime) -> int:
        """Set ``last_match_at`` to ``when`` for those of ``names`` whose value is before
        ``older_than`` (unknown names are ignored); return how many changed. A change of
        no templates: it neither bumps :meth:`version` nor waits for the index."""
        ...

    def set_last_match(self, name: str, when: datetime) -> Speaker:
        """Set ``last_match_at`` of ``name`` to ``when`` (an import keeps the archive's)."""
        ...

    def add_tombstone(self, external_id: str | None, keys: tuple[str, str]) -> Tombstone:
        """Record that the person with this external id and name keys opted out."""
        ...

    def clear_tombstones(self, keys: tuple[str, str] | None, external_id: str | None) -> int:
        """Delete the tombstones :meth:`find_tombstone` would find by ``keys`` or by
        ``external_id`` (each optional); return how many."""
        ...

    def add_cohort(self, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
        """Add ``clips`` (their unit ``(n, d)`` embeddings, lengths and hashes; never their
        audio or file names) to the cohort as voice ``label``; a clip the cohort holds
        already (by its hash) is skipped. Return how many were added."""
        ...

    def clear_cohort(self) -> int:
        """Delete the whole cohort; return how many clips it held."""
        ...

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries; their ``id`` is ignored (the storage numbers them)."""
        ...

    def prune_audit(self, before: datetime, keep: int) -> None:
        """Delete audit entries older than ``before``, then all but the newest ``keep``."""
        ...

    def clear_audit(self) -> int:
        """Delete every audit entry; return how many there were."""
        ...

    def add_prints(self, prints: Sequence[StoredPrint]) -> None:
        """Keep replay fingerprints. An enrolled clip's goes with its utterance (deleted by
        :meth:`remove_utterance` and :meth:`remove_speaker`); a query's with its
        ``speaker``, if that is enrolled (deleted by :meth:`remove_speaker`)."""
        ...

    def prune_prints(self, before: datetime) -> int:
        """Delete the queries' fingerprints stored before ``before``; return how many."""
        ...

    def add_api_key(self, key: ApiKey, digest: str) -> None:
        """Store a service key with the hash of its secret; :class:`InputError` if the
        name is taken."""
        ...

    def revoke_api_key(self, name: str) -> ApiKey:
        """Delete the key ``name`` and return it; :class:`InputError` if there is none."""
        ...


class Storage(Protocol):
    """A speaker database's store. Thread-safe: transactions may run from many threads."""

    @property
    def path(self) -> Path | str:
        """Where the database lives, named in messages: a file, or a server's URL
        without its password."""
        ...

    @property
    def created(self) -> bool:
        """Whether this object created the database (a backend may create it at the
        first write rather than when opened)."""
        ...

    @property
    def exists(self) -> bool:
        """Whether the database holds anything yet. Before its first write commits, reads
        see an empty database; :class:`~speakerdb.SpeakerDB` refuses queries on it."""
        ...

    def read(self) -> AbstractContextManager[Snapshot]:
        """A read transaction."""
        ...

    def change(self, *, templates: bool = False) -> AbstractContextManager[Change]:
        """A write transaction. ``templates`` must be true for a change that enrolls or
        removes (the backend then prepares its search index before it begins)."""
        ...

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        """For each row of ``queries`` (unit vectors), the ``k`` speakers whose templates
        have the highest inner product with it, best first, as raw-cosine :class:`Match`
        es named as of the same moment. A :data:`SearchFn`."""
        ...

    def find(
        self, queries: np.ndarray, k: int, *, group: str | None = None, overall: int = 0
    ) -> Found:
        """:meth:`search`, of ``group``'s members only when given (:class:`GroupNotFound`
        for an unknown group), then also each query's ``overall`` best of every speaker,
        with the marks of the same moment (:class:`~speakerdb.storage._marks.Found`: the
        watchlist and the next expiry). The marks cost no read of their own: they are
        kept with the index, and read again when they change. A group's search uses the
        index filtered by its members, and is exact on a flat index."""
        ...

    def describe(self, generation: int, digest: str | None) -> StoreDescription:
        """Where the database and its search index are, and the index's state for a
        database at ``generation`` whose templates have ``digest`` (for ``info``)."""
        ...

    def discard(self) -> None:
        """Close, and delete everything that opening the storage created."""
        ...

    def close(self) -> None: ...
