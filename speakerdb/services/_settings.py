"""The settings part of :class:`~speakerdb._facade.SpeakerDB`: thresholds, score
normalisation, calibration and the audit log.

:class:`_SettingsMixin` is not API: it only exists as a base of ``SpeakerDB``,
whose ``__init__`` sets the attributes declared at the top of the class.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, cast

from ..config import (
    DEFAULT_TOP_N,
    ENV_THRESHOLD,
    SCORE_NORMS,
    default_norm_threshold,
    default_score_norm,
    default_threshold,
    parse_threshold,
)
from ..errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from .._facade import SpeakerDB
    from ..decision._calibration import Calibration
    from ..storage import Storage
    from ..types import AuditEntry, AuditSettings, DatabaseInfo, EncoderInfo
    from ._audit import AuditLog

__all__: list[str] = []


class _SettingsView:
    """Which score and threshold decide, from the stored settings: the read-only half,
    shared by ``SpeakerDB`` and the fast :class:`~speakerdb.storage.sqlite._reader.Reader`.

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

    def _describe(
        self, path: Path, encoder: EncoderInfo | None, counts: tuple[int, int], generation: int
    ) -> DatabaseInfo:
        """What ``info`` shows of the database at ``path`` (at the head schema revision),
        with ``counts`` of speakers and utterances and the database's ``generation``."""
        from ..storage._indexfile import file_state, index_path_for
        from ..storage.sqlite._schema import SCHEMA_HEAD
        from ..types import DatabaseInfo

        threshold, source = self.threshold()
        norm = self.score_norm()[0]
        index = index_path_for(path)
        return DatabaseInfo(
            path=str(path.resolve()),
            encoder=encoder,
            threshold=threshold,
            threshold_source=source,
            n_speakers=counts[0],
            n_utterances=counts[1],
            schema_revision=SCHEMA_HEAD,
            index_path=str(index),
            index_state=file_state(index, generation),
            score_norm=norm,
            score_norm_threshold=None if norm == "none" else self.decision_threshold(norm),
        )

    def threshold(self) -> tuple[float, str]:
        """The decision threshold and where it came from (argument, env, database or default)."""
        if self._threshold_arg is not None:
            return self._threshold_arg, "argument"
        env = os.environ.get(ENV_THRESHOLD)
        if env:
            return parse_threshold(env, ENV_THRESHOLD), "environment"
        stored = self._settings().get("threshold")
        if stored is not None:
            return float(stored), "database"
        return default_threshold(self.model), f"default for {self.model}"

    def decision_threshold(self, score_norm: str | None = None) -> float:
        """The threshold queries use: that of the score they decide by (:meth:`score_norm`)."""
        return self._threshold_for(None, self.score_norm(score_norm)[0])

    def score_norm(self, override: str | None = None) -> tuple[str, int]:
        """The score normalisation in use (see :mod:`speakerdb.decision._norms`) and AS-norm's
        cohort size.

        In order: ``override`` (a per-query choice), the database's setting
        (:meth:`set_score_norm`), raw cosine when a cosine threshold was chosen (by
        argument, ``SPEAKERDB_THRESHOLD`` or stored in the database: such a threshold
        means a cosine, and databases from before score normalisation keep deciding
        as they did), and last the model's default
        (:func:`speakerdb.config.default_score_norm`).
        """
        settings = self._settings()
        stored = settings.get("score_norm")
        top_n = int(settings.get("asnorm_top_n") or DEFAULT_TOP_N)
        cosine_stored = settings.get("threshold") is not None
        chosen = override or stored
        if chosen:
            return _check_norm(chosen), top_n
        if cosine_stored or self._threshold_arg is not None or os.environ.get(ENV_THRESHOLD):
            return "none", top_n
        return default_score_norm(self.model), top_n

    def decision(
        self, threshold: float | None = None, score_norm: str | None = None
    ) -> tuple[str, int, float]:
        """Score normalisation, cohort size and threshold of one query.

        A threshold passed with the query but no score normalisation is a cosine when
        the database never chose one, as the constructor's ``threshold`` is.
        """
        if threshold is not None and score_norm is None and self._no_norm_chosen():
            score_norm = "none"
        norm, top_n = self.score_norm(score_norm)
        return norm, top_n, self._threshold_for(threshold, norm)

    def _no_norm_chosen(self) -> bool:
        return self._settings().get("score_norm") is None

    def _threshold_for(self, threshold: float | None, norm: str = "none") -> float:
        if norm != "none":
            if threshold is not None:
                return _parse_norm_threshold(threshold)
            stored = self._settings().get(f"{norm}_threshold")
            if stored is not None:
                return float(stored)
            return default_norm_threshold(norm, self.model)
        if threshold is not None:
            return parse_threshold(threshold, "argument")
        return self.threshold()[0]


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
        norm = _check_norm(score_norm)
        if norm == "none":
            number, key = parse_threshold(value, "set-threshold"), "threshold"
        else:
            number, key = _parse_norm_threshold(value), f"{norm}_threshold"
        with self._storage.change() as change:
            change.set_setting(key, repr(number))
        return number

    def set_score_norm(self, mode: str, *, top_n: int | None = None) -> tuple[str, int]:
        """Decide this database's queries by ``"margin-duration"``, ``"margin"``, ``"asnorm"``
        or ``"none"`` (raw cosine) scores."""
        mode = _check_norm(mode)
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
            cast("SpeakerDB", self),  # this mixin is only ever part of a SpeakerDB
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
    if not math.isfinite(number):
        raise InputError(f"threshold must be a finite number, got {value!r}")
    return number
