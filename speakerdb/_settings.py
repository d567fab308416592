"""The settings part of :class:`~speakerdb.service.SpeakerDB`: thresholds, score
normalisation, calibration and the audit log.

:class:`_SettingsMixin` is not API: it only exists as a base of ``SpeakerDB``,
whose ``__init__`` sets the attributes declared at the top of the class.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

import numpy as np

from . import catalog
from .asnorm import DEFAULT_TOP_N
from .audit import AuditLog
from .calibration import Calibration, calibrate_database
from .config import (
    DEFAULT_ASNORM_THRESHOLD,
    DEFAULT_MARGIN_THRESHOLDS,
    ENV_THRESHOLD,
    SCORE_NORMS,
    default_threshold,
    parse_threshold,
)
from .errors import InputError
from .store import Store
from .types import AuditEntry, AuditSettings

if TYPE_CHECKING:
    from .service import SpeakerDB

__all__: list[str] = []


class _SettingsMixin:
    """Thresholds, score normalisation, calibration and audit methods of ``SpeakerDB``."""

    _store: Store
    _audit: AuditLog
    _threshold_arg: float | None

    if TYPE_CHECKING:

        @property
        def model(self) -> str: ...

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
        norm, top_n = self.score_norm(score_norm)
        result = calibrate_database(
            cast("SpeakerDB", self),  # this mixin is only ever part of a SpeakerDB
            target_far=target_far,
            trials=trials,
            score_norm=norm,
            top_n=top_n,
        )
        if apply:
            self.set_threshold(result.threshold, score_norm=norm)
        return result

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
        self._store.purge_deleted()
        return count


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
