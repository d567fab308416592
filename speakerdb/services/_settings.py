"""The settings part of :class:`~speakerdb._facade.SpeakerDB`: thresholds, score
normalisation, calibration and the audit log.

:class:`_SettingsMixin` is not API: it only exists as a base of ``SpeakerDB``,
whose ``__init__`` sets the attributes declared at the top of the class.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from .._stored import StoredSettings
from ..decision._policy import PolicySources, resolve_policy
from ..decision._scores import get_norm
from ..errors import InputError
from ..storage.sqlite._reader import describe_database

if TYPE_CHECKING:
    from pathlib import Path

    from ..decision._calibration import Calibration, Scorer
    from ..storage import Storage
    from ..types import AuditEntry, AuditSettings, DatabaseInfo, DecisionPolicy, EncoderInfo
    from ._audit import AuditLog

__all__: list[str] = []


class _SettingsView:
    """Which score and threshold decide: the read-only half of the settings, each answer
    resolved by :mod:`speakerdb.decision._policy` from one read of the stored settings.

    Subclasses provide :meth:`_settings`; nothing here imports SQLAlchemy.
    """

    #: The threshold given when the database was opened (a cosine), if any.
    _threshold_arg: float | None = None

    if TYPE_CHECKING:

        @property
        def model(self) -> str: ...

    def _settings(self) -> dict[str, str]:
        """Every stored setting, read in one transaction."""
        raise NotImplementedError

    def _sources(self) -> PolicySources:
        stored = StoredSettings.parse(self._settings())
        return PolicySources(self.model, stored, self._threshold_arg)

    def _policy(
        self, threshold: float | None = None, score_norm: str | None = None
    ) -> DecisionPolicy:
        """The decision policy of one query (:func:`~speakerdb.decision._policy.resolve_policy`)."""
        return resolve_policy(self._sources(), threshold, score_norm)

    def _describe(
        self, path: Path, encoder: EncoderInfo | None, counts: tuple[int, int], generation: int
    ) -> DatabaseInfo:
        """What ``info`` shows (:func:`describe_database`)."""
        return describe_database(path, encoder, counts, generation, self._sources())

    def threshold(self) -> tuple[float, str]:
        """The cosine threshold and where it came from (argument, env, database or default)."""
        return self._sources().cosine_threshold()

    def decision_threshold(self, score_norm: str | None = None) -> float:
        """The threshold queries use: that of the score they decide by (:meth:`score_norm`)."""
        return self._policy(score_norm=score_norm).threshold

    def score_norm(self, override: str | None = None) -> tuple[str, int]:
        """The score normalisation in use (see :mod:`speakerdb.decision._scores`) and
        AS-norm's cohort size.

        In order: ``override`` (a per-query choice), the database's setting
        (:meth:`set_score_norm`), raw cosine when a cosine threshold was chosen (by
        argument, ``SPEAKERDB_THRESHOLD`` or stored in the database: such a threshold
        means a cosine, and databases from before score normalisation keep deciding
        as they did), and last the default of the model's encoder family
        (:mod:`speakerdb.decision._policy`).
        """
        return self._sources().score(override)

    def decision(
        self, threshold: float | None = None, score_norm: str | None = None
    ) -> tuple[str, int, float]:
        """Score normalisation, cohort size and threshold of one query.

        A threshold passed with the query but no score normalisation is a cosine when
        the database never chose one, as the constructor's ``threshold`` is.
        """
        policy = self._policy(threshold, score_norm)
        return policy.score_norm, policy.top_n, policy.threshold


class _SettingsMixin(_SettingsView):
    """Thresholds, score normalisation, calibration and audit methods of ``SpeakerDB``."""

    _storage: Storage
    _audit: AuditLog

    def _settings(self) -> dict[str, str]:
        with self._storage.read() as snapshot:
            return snapshot.settings()

    # -- settings --------------------------------------------------------

    def set_threshold(self, value: float, *, score_norm: str = "none") -> float:
        """Store ``value`` as this database's threshold: a cosine in [-1, 1], or, with
        ``score_norm`` ``"asnorm"``, ``"margin"`` or ``"margin-duration"``, the threshold of
        those scores.

        A stored cosine threshold on a database that never chose a score normalisation
        makes it decide by raw cosine (see :meth:`score_norm`)."""
        norm = get_norm(score_norm)
        number = norm.check_threshold(value, "set-threshold")
        # The cosine threshold keeps the key it had before normalised scores existed.
        key = "threshold" if norm.decides_by_cosine else f"{norm.name}_threshold"
        with self._storage.change() as change:
            change.set_setting(key, repr(number))
        return number

    def set_score_norm(self, mode: str, *, top_n: int | None = None) -> tuple[str, int]:
        """Decide this database's queries by ``"margin-duration"``, ``"margin"``, ``"asnorm"``
        or ``"none"`` (raw cosine) scores."""
        mode = get_norm(mode).name
        if top_n is not None and top_n < 1:
            raise InputError(f"--top-n must be at least 1, got {top_n}")
        with self._storage.change() as change:
            change.set_setting("score_norm", mode)
            if top_n is not None:
                change.set_setting("asnorm_top_n", str(top_n))
        return self.score_norm()

    def calibrate(
        self,
        *,
        target_far: float | None = None,
        trials: str | os.PathLike[str] | None = None,
        score_norm: str | None = None,
        apply: bool = True,
    ) -> Calibration:
        """Choose a threshold from the enrollments, or from a labelled trial list, and store
        it unless ``apply`` is false; see :mod:`speakerdb.decision._calibration`."""
        from ..decision._calibration import calibrate_database

        norm, top_n = self.score_norm(score_norm)
        result = calibrate_database(
            cast("Scorer", self),  # this mixin is only ever part of a SpeakerDB, a Scorer
            target_far=target_far,
            trials=trials,
            score_norm=norm,
            top_n=top_n,
        )
        if apply:
            self.set_threshold(result.threshold, score_norm=norm)
        return result

    # -- audit log (see speakerdb.services._audit) ----------------------------------------

    def set_audit(
        self, enabled: bool, *, retention_days: int | None = None, max_rows: int | None = None
    ) -> AuditSettings:
        """Log identify and verify decisions, or stop (off by default;
        :mod:`speakerdb.services._audit`).

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
        return self._audit.clear()  # the storage then leaves no copy of them
