"""A database's decision settings: the policy each query resolves, the thresholds and
score normalisation stored with ``set-threshold``, ``score-norm`` and ``calibrate``.

Every answer is resolved by :mod:`speakerdb.decision._policy` from one read of the
stored settings; the precedence itself is written there and in :mod:`speakerdb.config`.

Identify and verify each have a threshold of every score; ``set-threshold`` sets
one operation's or both. No call changes which score decides without saying so: a
threshold stored without naming its score is refused on a database that decides by
a normalised score (it would be read as a cosine), and a threshold stored with its
score makes that score the one that decides (the CLI says so when that changes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .._stored import OPERATIONS, StoredSettings, threshold_key, without_threshold
from ..config import (
    ENV_COUNTERMEASURE,
    ENV_THRESHOLD,
    MIN_COHORT_VOICES,
    parse_replay_window,
    resolve_replay_window,
)
from ..decision._countermeasure import (
    BandwidthCountermeasure,
    Countermeasure,
    get_countermeasure,
)
from ..decision._policy import (
    PolicySources,
    check_operation,
    cohort_fallback,
    default_threshold,
    resolve_policy,
    sized,
)
from ..decision._scores import Cosine, get_norm
from ..errors import InputError
from ..storage import require_database
from ..storage._describe import describe_database
from ..types import ClearedThreshold

if TYPE_CHECKING:
    from ..decision._calibration import Calibration, Scorer
    from ..decision._policy import ResolvedThreshold
    from ..decision._thresholds import OverriddenDefault
    from ..storage import Change, Storage
    from ..types import DatabaseInfo, DecisionPolicy
    from ._model import ModelSlot

__all__ = ["Settings"]

#: ``countermeasure="none"``: chosen explicitly, overriding the environment and the database.
_NONE = BandwidthCountermeasure()  # a sentinel object, never used to score


def _named_countermeasure(name: str) -> Countermeasure:
    name = name.strip()
    return _NONE if name == "none" else get_countermeasure(name)


def _chosen(countermeasure: Countermeasure) -> Countermeasure | None:
    return None if countermeasure is _NONE else countermeasure


class Settings:
    """The decision settings of one database, for the model in ``slot``."""

    def __init__(
        self,
        storage: Storage,
        slot: ModelSlot,
        threshold: float | None,
        replay_window: int | None = None,
        countermeasure: str | Countermeasure | None = None,
    ) -> None:
        self._storage = storage
        self._slot = slot
        #: The threshold given when the database was opened (a cosine), if any.
        self._threshold_arg = threshold
        #: The replay window given when the database was opened (seconds), if any.
        self._replay_window_arg = replay_window
        #: Whether queries are checked for replays at all (``replay_check``).
        self.replay_check = True
        #: The countermeasure given when the database was opened, if any.
        if isinstance(countermeasure, str):
            countermeasure = _named_countermeasure(countermeasure)
        self._countermeasure_arg = countermeasure

    def countermeasure(self) -> tuple[Countermeasure | None, str]:
        """The countermeasure fused into queries and where it came from: the argument,
        ``SPEAKERDB_COUNTERMEASURE``, the database (``speakerdb countermeasure NAME``), or
        none (:mod:`speakerdb.decision._countermeasure`)."""
        if self._countermeasure_arg is not None:
            return _chosen(self._countermeasure_arg), "argument"
        env = os.environ.get(ENV_COUNTERMEASURE, "").strip()
        if env:
            try:
                return _chosen(_named_countermeasure(env)), "environment"
            except InputError as exc:
                raise InputError(
                    f"{exc} (from {ENV_COUNTERMEASURE}); set {ENV_COUNTERMEASURE} to one of "
                    "them, or unset it"
                ) from None
        with self._storage.read() as snapshot:
            stored = snapshot.settings().get("countermeasure")
        if stored:
            return _chosen(_named_countermeasure(stored)), "database"
        return None, "default"

    def set_countermeasure(self, name: str) -> str:
        """Store the countermeasure queries use by name (``none`` for none)."""
        chosen = _named_countermeasure(name)
        stored = "none" if chosen is _NONE else chosen.name
        with self._storage.change() as change:
            change.set_setting("countermeasure", stored)
        return stored

    def replay_window(self) -> tuple[int, str]:
        """The replay window in seconds (0: off) and where it came from
        (:func:`~speakerdb.config.resolve_replay_window`)."""
        with self._storage.read() as snapshot:
            stored = StoredSettings.parse(snapshot.settings()).replay_window_s
        return resolve_replay_window(self._replay_window_arg, stored)

    def set_replay_window(self, value: int | str) -> int:
        """Store the replay window (seconds, or ``"10m"``; 0 turns it off); the queries'
        fingerprints older than it are deleted at once."""
        seconds = parse_replay_window(value, "replay-window")
        with self._storage.change() as change:
            change.set_setting("replay_window_s", str(seconds))
            change.prune_prints(datetime.now(timezone.utc) - timedelta(seconds=seconds))
        return seconds

    def sources(self) -> PolicySources:
        """Everything a policy is resolved from, as of one read of the stored settings."""
        with self._storage.read() as snapshot:
            stored = StoredSettings.parse(snapshot.settings())
        return PolicySources(self._slot.model, stored, self._threshold_arg)

    def cosine_choice(self) -> ResolvedThreshold:
        """The cosine threshold that the watchlist and the enrollment gates compare cosines
        with: identify's. An override (the opening ``threshold``, ``SPEAKERDB_THRESHOLD``)
        counts only while cosine decides; on a database that decides by another score it
        is a threshold of that score, not a cosine, and the stored or default cosine
        threshold is used."""
        sources = self.sources()
        if sources.score(None)[0] != Cosine.name:
            environ = os.environ if sources.environ is None else sources.environ
            unset = {k: v for k, v in environ.items() if k != ENV_THRESHOLD}
            sources = replace(sources, threshold_arg=None, environ=unset)
        return sources.cosine_choice()

    def policy(
        self,
        threshold: float | None = None,
        score_norm: str | None = None,
        operation: str = "identify",
        n_speakers: int | None = None,
    ) -> DecisionPolicy:
        """The decision policy of one ``operation`` query
        (:func:`~speakerdb.decision._policy.resolve_policy`) on a database of
        ``n_speakers`` (not known: identify's default is the strictest; see :meth:`sized`)."""
        sources = replace(self.sources(), n_speakers=n_speakers)
        return resolve_policy(sources, threshold, score_norm, check_operation(operation))

    def policy_now(
        self, threshold: float | None, score_norm: str | None, operation: str
    ) -> DecisionPolicy:
        """:meth:`policy` at the number of speakers enrolled now (identify's default
        threshold depends on it)."""
        with self._storage.read() as snapshot:
            n_speakers = snapshot.counts()[0]
        return self.policy(threshold, score_norm, operation, n_speakers)

    def sized(self, policy: DecisionPolicy, n_speakers: int) -> DecisionPolicy:
        """An identify ``policy`` for a database of ``n_speakers``
        (:func:`~speakerdb.decision._policy.sized`)."""
        return sized(policy, self._slot.model, n_speakers)

    def describe(self) -> DatabaseInfo:
        """What ``info`` shows (:func:`describe_database`): the storage describes where it
        is and the state of its search index; the replay window is this object's.
        Refuses a database no write has created."""
        require_database(self._storage)
        with self._storage.read() as snapshot:
            counts, generation = snapshot.counts(), snapshot.version()
            whole = snapshot.whole_clip_speakers()
        sources = self.sources()
        where = self._storage.describe(generation, sources.stored.index_digest)
        described = describe_database(where, self._slot.stored, counts, sources, whole)
        window, source = self.replay_window()
        return replace(described, replay_window_s=window, replay_window_source=source)

    def set_threshold(
        self, value: float, *, score_norm: str | None = None, operation: str = "both"
    ) -> float:
        """Store ``value`` as the threshold of ``score_norm`` scores for ``operation``
        (``identify``, ``verify`` or ``both``), and decide by those scores from now on.

        Without ``score_norm`` it is the threshold of the score the database decides by
        already, which must then be the cosine: on a database that decides by a
        normalised score, a bare number is refused, naming both fixes.
        """
        operations = _operations(operation)
        with self._storage.change() as change:
            sources = PolicySources(self._slot.model, StoredSettings.parse(change.settings()))
            norm = get_norm(score_norm or _bare_threshold_score(sources.stored_score(), value))
            number = norm.check_threshold(value, "set-threshold")
            for op in operations:
                change.set_setting(threshold_key(op, norm.name), repr(number))
            change.set_setting("score_norm", norm.name)
        return number

    def cohort_fallback(
        self, policy: DecisionPolicy, operation: str, voices: int
    ) -> DecisionPolicy:
        """The policy deciding instead of ``policy`` when its cohort is too small
        (:func:`~speakerdb.decision._policy.cohort_fallback`)."""
        return cohort_fallback(self.sources(), policy, operation, voices)

    def stored_score(self) -> str:
        """The score the database decides by, arguments and environment aside."""
        return self.sources().stored_score()

    def set_score_norm(self, mode: str, *, top_n: int | None = None) -> tuple[str, int]:
        """Decide queries by ``mode`` scores from now on; return it with AS-norm's cohort size."""
        mode = get_norm(mode).name
        if top_n is not None and top_n < 1:
            raise InputError(f"--top-n must be at least 1, got {top_n}")
        with self._storage.change() as change:
            change.set_setting("score_norm", mode)
            if top_n is not None:
                change.set_setting("asnorm_top_n", str(top_n))
        return self.sources().score()

    def clear_threshold(
        self, *, score_norm: str | None = None, operation: str = "both"
    ) -> tuple[ClearedThreshold, ...]:
        """Remove the thresholds stored for ``operation`` (``identify``, ``verify`` or
        ``both``) of ``score_norm`` scores, else of every score, so that the score's
        default decides; return what was removed (nothing, where none was stored). The
        score that decides stays the one that did. Refuses a database no write has
        created."""
        operations = _operations(operation)
        require_database(self._storage)
        with self._storage.change() as change:
            before = change.settings()
            stored = StoredSettings.parse(before)
            every = {score for _, score, _ in stored.stored_thresholds()}
            scores = sorted(every) if score_norm is None else [get_norm(score_norm).name]
            after, cleared = _cleared(before, stored, operations, scores)
            deciding = PolicySources(self._slot.model, stored).stored_score()
            _write(change, before, self._deciding(after, deciding))
        return cleared

    def calibrate(
        self,
        scorer: Scorer,
        *,
        target_far: float | None,
        trials: str | os.PathLike[str] | None,
        score_norm: str | None,
        apply: bool,
    ) -> Calibration:
        """Choose identify's and verify's thresholds (:mod:`speakerdb.decision._calibration`)
        and, unless ``apply`` is false, store each for its operation, all in one change. A
        kept default (too few voices or trials to show a lower threshold) is not pinned,
        so identify's keeps following N: the operation's stored threshold of the score is
        removed instead (the result's ``cleared``; with ``apply`` false, what would be),
        and the score calibrated decides from now on. The result's ``overridden`` names
        each kept default that a given threshold (argument, environment) still overrides.
        Refuses a database no write has created."""
        from ..decision._calibration import calibrate_database

        require_database(self._storage)
        sources = self.sources()
        # The score calibrated is the one asked for, else the one the database decides by
        # (a threshold in the environment is not a choice of score).
        norm, top_n = sources.score(score_norm or sources.stored_score())
        if get_norm(norm).needs_population:
            _refuse_small_cohort(norm, scorer.population().cohort_voices)
        model = self._slot.model
        with self._storage.read() as snapshot:
            n_speakers = snapshot.counts()[0]
        result = calibrate_database(
            scorer,
            target_far=target_far,
            trials=trials,
            score_norm=norm,
            top_n=top_n,
            default=default_threshold(get_norm(norm), model, "identify", n_speakers),
            verify_default=default_threshold(get_norm(norm), model, "verify"),
        )
        if apply:
            with self._storage.change() as change:
                before = change.settings()
                after, cleared = self._calibrated(before, result, norm)
                _write(change, before, after)
        else:
            with self._storage.read() as snapshot:
                after, cleared = self._calibrated(snapshot.settings(), result, norm)
        decided = replace(sources, stored=StoredSettings.parse(after), n_speakers=n_speakers)
        overridden = _overridden(decided, result, score_norm)
        return replace(result, overridden=overridden, cleared=cleared)

    def _calibrated(
        self, before: Mapping[str, str], result: Calibration, norm: str
    ) -> tuple[dict[str, str], tuple[ClearedThreshold, ...]]:
        """The settings ``before`` once ``result`` (of ``norm`` scores) is applied: each
        calibrated threshold stored for its operation, each operation that kept the default
        without a stored threshold of ``norm``, and ``norm`` the score that decides."""
        after, stored = dict(before), StoredSettings.parse(before)
        cleared: list[ClearedThreshold] = []
        for choice in (result.identify, result.verify):
            if choice.method == "default":
                after, gone = _cleared(after, stored, (choice.operation,), (norm,))
                cleared += gone
            else:
                number = get_norm(norm).check_threshold(choice.threshold, "calibrate")
                after[threshold_key(choice.operation, norm)] = repr(number)
        # A calibrated threshold chooses its score, as set-threshold's does.
        return self._deciding(after, norm, choose=not result.kept_defaults), tuple(cleared)

    def _deciding(
        self, settings: dict[str, str], score: str, *, choose: bool = False
    ) -> dict[str, str]:
        """``settings`` in which ``score`` decides: stored as the database's choice where,
        without it, another score would (a database that never chose one decides by
        cosine only while it stores a cosine threshold), or where ``choose``."""
        stored = StoredSettings.parse(settings)
        if choose or PolicySources(self._slot.model, stored).stored_score() != score:
            return {**settings, "score_norm": score}
        return settings


def _cleared(
    before: Mapping[str, str],
    stored: StoredSettings,
    operations: Sequence[str],
    scores: Sequence[str],
) -> tuple[dict[str, str], tuple[ClearedThreshold, ...]]:
    """The settings ``before`` without the thresholds of ``scores`` stored for
    ``operations`` (``stored`` is ``before`` parsed), and each one removed."""
    after, cleared = dict(before), list[ClearedThreshold]()
    for operation in operations:
        for score in scores:
            value = stored.threshold_for(operation, score)
            if value is not None:
                cleared.append(ClearedThreshold(operation, score, value))
                after = without_threshold(after, operation, score)
    return after, tuple(cleared)


def _write(change: Change, before: Mapping[str, str], after: Mapping[str, str]) -> None:
    """Store the settings ``after`` where ``before`` are stored: each key changed is set,
    each one gone is deleted."""
    for key in sorted(before.keys() - after.keys()):
        change.delete_setting(key)
    for key, value in after.items():
        if before.get(key) != value:
            change.set_setting(key, value)


def _overridden(
    sources: PolicySources, result: Calibration, score_norm: str | None
) -> tuple[OverriddenDefault, ...]:
    """Each default ``result`` kept that does not decide its operation's queries (with
    this ``score_norm``) by the settings of ``sources``, those calibrate left: a threshold
    given (argument, environment) outranks every stored setting."""
    from ..decision._thresholds import OverriddenDefault  # loaded only to calibrate

    found = []
    for choice in (result.identify, result.verify):
        if choice.method != "default":
            continue
        policy = resolve_policy(sources, None, score_norm, choice.operation)
        # Equal as shown (4 decimals): the same bar, nothing to say.
        if policy.builtin_default or abs(policy.threshold - choice.threshold) < 5e-5:
            continue
        found.append(
            OverriddenDefault(
                operation=choice.operation,
                score=result.score,
                default=choice.threshold,
                threshold=policy.threshold,
                source=policy.source,
            )
        )
    return tuple(found)


def _bare_threshold_score(deciding: str, value: float) -> str:
    """The score of a threshold given without one: the cosine, if the cosine decides."""
    norm = get_norm(deciding)
    if norm.decides_by_cosine:
        return norm.name
    raise InputError(
        f"this database decides by {norm.name} scores, so a threshold without a score "
        f"({value!r}) is ambiguous: pass --score-norm {norm.name} (score_norm="
        f"{norm.name!r}) to set the threshold of {norm.name} scores, or --score-norm none "
        "(score_norm='none') to decide by raw cosine from now on"
    )


def _operations(operation: str) -> tuple[str, ...]:
    """The operations ``--for`` names: ``identify``, ``verify`` or ``both``."""
    if operation == "both":
        return OPERATIONS
    if operation not in OPERATIONS:
        raise InputError(f"a threshold is for identify, verify or both, got {operation!r}")
    return (operation,)


def _refuse_small_cohort(norm: str, voices: int) -> None:
    """Calibrating a population score on a cohort too small for it gives a threshold of
    noise (:data:`~speakerdb.config.MIN_COHORT_VOICES`)."""
    if voices < MIN_COHORT_VOICES:
        raise InputError(
            f"{norm} needs a cohort of at least {MIN_COHORT_VOICES} voices besides each "
            f"speaker's, and this database has {voices}: import outside voices (`speakerdb "
            "cohort import`), enroll more speakers, or calibrate another score"
        )
