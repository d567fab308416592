"""Typed, frozen results returned by the library.

Scores are raw cosine similarities in [-1, 1]; speakerdb never rescales them.

Every result's ``to_dict()`` is its JSON document, the one every front end
writes (the CLI's ``--json``, a service's responses): plain JSON values, times
in ISO 8601, and ``None`` for a float that is not finite (a rate with nothing to
measure). :func:`to_jsonable` does the same for any value made of results.
"""

from __future__ import annotations

from ._base import to_jsonable
from ._decisions import (
    AuditEntry,
    CountermeasureScore,
    DecisionPolicy,
    Identification,
    Match,
    Outcome,
    Segment,
    Verification,
)
from ._records import (
    ApiKey,
    CohortVoice,
    EncoderInfo,
    Enrollment,
    Group,
    QualityIssue,
    Speaker,
    Tombstone,
    Utterance,
)
from ._reports import (
    ArchiveReport,
    AuditSettings,
    BackupReport,
    ClearedThreshold,
    DatabaseInfo,
    ReembedReport,
    StoredThreshold,
    Threshold,
)

__all__ = [
    "ApiKey",
    "ArchiveReport",
    "AuditEntry",
    "AuditSettings",
    "BackupReport",
    "ClearedThreshold",
    "CohortVoice",
    "CountermeasureScore",
    "DatabaseInfo",
    "DecisionPolicy",
    "EncoderInfo",
    "Enrollment",
    "Group",
    "Identification",
    "Match",
    "Outcome",
    "QualityIssue",
    "ReembedReport",
    "Segment",
    "Speaker",
    "StoredThreshold",
    "Threshold",
    "Tombstone",
    "Utterance",
    "Verification",
    "to_jsonable",
]
