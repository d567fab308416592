"""The services a :class:`~speakerdb.SpeakerDB` composes (built together by
:mod:`._opening`): enrolling, querying, the speakers, the decision settings, the audit
log, the search index's administration, the lifecycle and bulk enrollment from a
manifest. Each takes the storage and the pieces it needs, never the facade; only the
manifest reader is used from outside the package."""

from ._audit import DEFAULT_MAX_ROWS, DEFAULT_RETENTION_DAYS
from ._batch import BatchFailure, BatchReport, ManifestRow, read_manifest
from ._quality import MIN_SPEECH_S, check_enrollment

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RETENTION_DAYS",
    "MIN_SPEECH_S",
    "BatchFailure",
    "BatchReport",
    "ManifestRow",
    "check_enrollment",
    "read_manifest",
]
