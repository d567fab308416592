"""A database's decision settings: the policy each query resolves, the thresholds and
score normalisation stored with ``set-threshold``, ``score-norm`` and ``calibrate``.

Every answer is resolved by :mod:`speakerdb.decision._policy` from one read of the
stored settings; the precedence itself is written there and in :mod:`speakerdb.config`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._stored import StoredSettings
from ..decision._policy import PolicySources, resolve_policy
from ..decision._scores import get_norm
from ..errors import InputError
from ..storage._describe import describe_database

if TYPE_CHECKING:
    from ..decision._calibration import Calibration, Scorer
    from ..storage import Storage
    from ..types import DatabaseInfo, DecisionPolicy, EncoderInfo
    from ._model import ModelSlot

__all__ = ["Settings"]


class Settings:
    """The decision settings of one database, for the model in ``slot``."""

    def __init__(self, storage: Storage, slot: ModelSlot, threshold: float | None) -> None:
        self._storage = storage
        self._slot = slot
        #: The threshold given when the database was opened (a cosine), if any.
        self._threshold_arg = threshold

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
        self, encoder: EncoderInfo | None, counts: tuple[int, int], generation: int
    ) -> DatabaseInfo:
        """What ``info`` shows (:func:`describe_database`): the storage describes where it
        is and the state of its search index."""
        sources = self.sources()
        where = self._storage.describe(generation, sources.stored.index_digest)
        return describe_database(where, encoder, counts, sources)

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
        """Choose identify's and verify's thresholds (:mod:`speakerdb.decision._calibration`)
        and store them unless ``apply`` is false (or too few voices kept the defaults).
        Until the database keeps a threshold per operation, the stricter is stored for
        both."""
        from ..decision._calibration import calibrate_database
        from ..encoders._registry import family_of

        norm, top_n = self.sources().score(score_norm)
        model = self._slot.model
        result = calibrate_database(
            scorer,
            target_far=target_far,
            trials=trials,
            score_norm=norm,
            top_n=top_n,
            default=get_norm(norm).default_threshold(family_of(model), model),
        )
        if apply and result.identify.method != "default":  # a kept default stays unpinned
            strictest = max(result.identify.threshold, result.verify.threshold)
            self.set_threshold(strictest, score_norm=norm)
        return result
