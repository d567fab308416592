"""Reports of a database and of its maintenance: ``info`` and its thresholds, archives,
re-embedding, backups and the audit log's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ._base import _Result
from ._readonly import ReadOnlyDict
from ._records import EncoderInfo


@dataclass(frozen=True, slots=True)
class Threshold(_Result):
    """The threshold an operation decides by: of which ``score`` (``none``: raw cosine),
    its ``value``, and its ``source`` (as :class:`DecisionPolicy`'s). ``duration_fall``
    (as :class:`DecisionPolicy`'s): where it is not 0, ``value`` is the bar of a 0.5 s
    query and a query of ``d`` seconds faces ``value - duration_fall x ln(d / 0.5 s)``."""

    score: str
    value: float
    source: str
    duration_fall: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredThreshold(_Result):
    """A threshold the database stores: for which ``operation`` (``identify``, ``verify``,
    or ``both`` for one stored by an older speakerdb), of which ``score``, its ``value``,
    and whether it ``decides`` now (it does not when another score decides, or when an
    argument or ``SPEAKERDB_THRESHOLD`` overrides it)."""

    operation: str
    score: str
    value: float
    decides: bool


@dataclass(frozen=True, slots=True)
class ClearedThreshold(_Result):
    """A stored threshold that was removed (by ``set-threshold --clear``, or by a
    ``calibrate`` that kept the default): ``operation``'s (``identify`` or ``verify``)
    threshold of ``score`` scores (as :class:`StoredThreshold`'s; ``none``: raw cosine),
    which was ``value``. That score's default decides the operation in its place, unless
    an argument or ``SPEAKERDB_THRESHOLD`` overrides it."""

    operation: str
    score: str
    value: float


@dataclass(frozen=True, slots=True)
class DatabaseInfo(_Result):
    """What ``speakerdb info`` shows.

    ``threshold`` and ``threshold_source`` are identify's (``thresholds`` has both
    operations'); ``stored_thresholds`` lists every threshold stored, deciding or not.
    """

    path: str
    encoder: EncoderInfo | None
    threshold: float
    threshold_source: str
    n_speakers: int
    n_utterances: int
    schema_revision: str | None
    index_path: str
    index_state: str
    #: The scores decisions use (``none``: cosine; see :mod:`speakerdb.decision._norms`),
    #: and their threshold when that is not the cosine one.
    score_norm: str = "none"
    score_norm_threshold: float | None = None
    #: How long (seconds) decided queries' fingerprints are kept for the replay check
    #: (0: off), and where that came from (``argument``, ``environment``, ``database``,
    #: ``default``).
    replay_window_s: int = 600  # speakerdb.config.DEFAULT_REPLAY_WINDOW_S
    replay_window_source: str = "default"
    #: The threshold each operation (``identify``, ``verify``) decides by.
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    stored_thresholds: tuple[StoredThreshold, ...] = ()
    #: Why the deciding score is not the one the database chose, if it is not.
    notice: str | None = None
    #: How many speakers have a voiceprint embedded from whole clips by a speakerdb older
    #: than the spoken part (:attr:`Utterance.spoken_margin_s` ``None``), while queries
    #: are embedded from their words; and, when there are any, the fix in words.
    n_whole_clip_speakers: int = 0
    whole_clip_notice: str | None = None

    def __post_init__(self) -> None:
        # Frozen through: the caller's dict is copied, read-only.
        object.__setattr__(self, "thresholds", ReadOnlyDict(self.thresholds))


@dataclass(frozen=True, slots=True)
class ArchiveReport(_Result):
    """What ``speakerdb export`` wrote or ``speakerdb import`` read: the archive, whether it
    is encrypted, and how many speakers, clips, opt-out tombstones and cohort clips it
    holds. On import, ``imported`` and ``skipped`` name the speakers added and those left
    out as duplicates (``on_duplicate="skip"``)."""

    path: str
    encrypted: bool
    n_speakers: int
    n_utterances: int
    n_tombstones: int
    imported: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    n_cohort: int = 0


@dataclass(frozen=True, slots=True)
class ReembedReport(_Result):
    """What ``speakerdb reembed`` built: the new database at ``path`` for ``model``.

    ``reembedded`` speakers were embedded again from their kept audio; ``partial`` ones
    from the part of their clips whose audio was kept; with the database's own model
    (voiceprints of whole clips brought up to date), ``copied`` ones had no audio kept
    but every clip embedded from its words already, and were taken over as they are
    (``n_utterances`` counts the clips of all three); those in ``reenroll`` had no audio
    kept (or, with the own model, some whole clip) and must enroll again; ``failed`` maps
    a speaker the new database refused to why (a read-only dict: a copy of what was
    given, as frozen as the rest). ``carried`` names the settings taken over;
    ``not_carried`` says, in words, what was not and why (it belongs to the old model, or
    to the old database).

    ``in_place`` (``speakerdb reembed --in-place``): no new database was built; ``path``
    is the database itself, whose whole clips with kept audio were embedded again from
    their words (``n_utterances`` of them): ``reembedded`` speakers have none left,
    ``partial`` ones keep whole clips whose audio was not kept, and those in
    ``reenroll`` hold whole clips none of whose audio was kept (to enroll again, or to
    remove those clips); everything else stayed, so nothing is ``carried`` or
    ``not_carried`` and ``n_tombstones`` is 0."""

    path: str
    model: str
    reembedded: tuple[str, ...]
    n_utterances: int
    partial: tuple[str, ...]
    reenroll: tuple[str, ...]
    failed: Mapping[str, str]
    n_tombstones: int
    carried: tuple[str, ...]
    not_carried: tuple[str, ...]
    seconds: float
    copied: tuple[str, ...] = ()
    in_place: bool = False

    def __post_init__(self) -> None:
        # Frozen through and through: a caller's dict is copied, so neither it nor a
        # reader can change the report afterwards.
        object.__setattr__(self, "failed", ReadOnlyDict(self.failed))


@dataclass(frozen=True, slots=True)
class BackupReport(_Result):
    """A backup written by ``speakerdb backup``: where, what it holds, its size in bytes,
    its schema revision and how long it took."""

    path: str
    n_speakers: int
    n_utterances: int
    bytes: int
    schema_revision: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class AuditSettings(_Result):
    """Whether decisions are logged, and how long entries are kept
    (:mod:`speakerdb.storage.sql._audit`)."""

    enabled: bool
    retention_days: int
    max_rows: int
