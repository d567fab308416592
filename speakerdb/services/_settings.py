"""A database's decision settings: the policy each query resolves, the thresholds and
score normalisation stored with ``set-threshold``, ``score-norm`` and ``calibrate``.

Every answer is resolved by :mod:`speakerdb.decision._policy` from one read of the
stored settings; the precedence itself is written there and in :mod:`speakerdb.config`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .._stored import StoredSettings
from ..config import ENV_COUNTERMEASURE, parse_replay_window, resolve_replay_window
from ..decision._countermeasure import (
    BandwidthCountermeasure,
    Countermeasure,
    get_countermeasure,
)
from ..decision._policy import PolicySources, resolve_policy
from ..decision._scores import get_norm
from ..errors import InputError
from ..storage.sqlite._reader import describe_database

if TYPE_CHECKING:
    from ..decision._calibration import Calibration, Scorer
    from ..storage import Storage
    from ..types import DatabaseInfo, DecisionPolicy, EncoderInfo
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
            return _chosen(_named_countermeasure(env)), "environment"
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

    def policy(
        self, threshold: float | None = None, score_norm: str | None = None
    ) -> DecisionPolicy:
        """The decision policy of one query (:func:`~speakerdb.decision._policy.resolve_policy`)."""
        return resolve_policy(self.sources(), threshold, score_norm)

    def describe(
        self, path: Path, encoder: EncoderInfo | None, counts: tuple[int, int], generation: int
    ) -> DatabaseInfo:
        """What ``info`` shows (:func:`describe_database`)."""
        described = describe_database(path, encoder, counts, generation, self.sources())
        window, source = self.replay_window()
        return replace(described, replay_window_s=window, replay_window_source=source)

    def set_threshold(self, value: float, *, score_norm: str = "none") -> float:
        """Store ``value`` as the threshold of ``score_norm`` scores (``none``: a cosine in
        [-1, 1]). A stored cosine threshold on a database that never chose a score
        normalisation makes it decide by raw cosine (:mod:`speakerdb.decision._policy`)."""
        norm = get_norm(score_norm)
        number = norm.check_threshold(value, "set-threshold")
        # The cosine threshold keeps the key it had before normalised scores existed.
        key = "threshold" if norm.decides_by_cosine else f"{norm.name}_threshold"
        with self._storage.change() as change:
            change.set_setting(key, repr(number))
        return number

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

    def calibrate(
        self,
        scorer: Scorer,
        *,
        target_far: float | None,
        trials: str | os.PathLike[str] | None,
        score_norm: str | None,
        apply: bool,
    ) -> Calibration:
        """Choose a threshold (:mod:`speakerdb.decision._calibration`) and store it unless
        ``apply`` is false."""
        from ..decision._calibration import calibrate_database

        norm, top_n = self.sources().score(score_norm)
        result = calibrate_database(
            scorer, target_far=target_far, trials=trials, score_norm=norm, top_n=top_n
        )
        if apply:
            self.set_threshold(result.threshold, score_norm=norm)
        return result
