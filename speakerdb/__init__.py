"""speakerdb: enrollment-based speaker identification on SQLite and FAISS.

    from speakerdb import SpeakerDB

    with SpeakerDB("speakers.db", model="resemblyzer") as db:
        db.enroll("alice", ["alice1.wav", "alice2.wav", "alice3.wav"])
        result = db.identify("visitor.wav")
        print(result.speaker or "unknown", result.best)

Names are loaded on first use so that ``import speakerdb`` (and the CLI's
``--help``) stays fast; the heavy libraries (torch, transformers, faiss) load
only when audio is embedded or the index is searched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiKey",
    "AudioError",
    "AuditEntry",
    "AuditSettings",
    "BackupReport",
    "BatchFailure",
    "BatchReport",
    "Calibration",
    "Clip",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseInfo",
    "DecisionPolicy",
    "DuplicateSpeaker",
    "DuplicateUtterance",
    "EncoderInfo",
    "Enrollment",
    "EnrollmentRefused",
    "EvaluationReport",
    "Forbidden",
    "GroupNotFound",
    "Identification",
    "IndexChoice",
    "InputError",
    "InvalidName",
    "Match",
    "ModelError",
    "ModelMismatch",
    "OptedOut",
    "Outcome",
    "QualityIssue",
    "RequestTimeout",
    "SchemaError",
    "Segment",
    "SegmentOptions",
    "ServiceBusy",
    "ServiceError",
    "Speaker",
    "SpeakerDB",
    "SpeakerDBError",
    "SpeakerNotFound",
    "TooLarge",
    "Unauthorized",
    "Utterance",
    "Verification",
    "__version__",
]

_WHERE = {
    "Clip": "audio._decode",
    "BatchFailure": "services._batch",
    "BatchReport": "services._batch",
    "SpeakerDB": "_facade",
    "Calibration": "decision._calibration",
    "EvaluationReport": "evaluation._evaluate",
    "IndexChoice": "storage._indexkind",
    "SegmentOptions": "diarization._options",
    **dict.fromkeys(
        [
            "ApiKey",
            "AuditEntry",
            "AuditSettings",
            "BackupReport",
            "DatabaseInfo",
            "DecisionPolicy",
            "EncoderInfo",
            "Enrollment",
            "Identification",
            "Match",
            "Outcome",
            "QualityIssue",
            "Segment",
            "Speaker",
            "Utterance",
            "Verification",
        ],
        "types",
    ),
    **dict.fromkeys(
        [
            "AudioError",
            "DatabaseBusy",
            "DatabaseError",
            "DuplicateSpeaker",
            "DuplicateUtterance",
            "EnrollmentRefused",
            "GroupNotFound",
            "InputError",
            "InvalidName",
            "ModelError",
            "ModelMismatch",
            "OptedOut",
            "SchemaError",
            "SpeakerDBError",
            "SpeakerNotFound",
            *["Forbidden", "RequestTimeout", "ServiceBusy", "ServiceError", "TooLarge"],
            "Unauthorized",
        ],
        "errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'speakerdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from ._facade import SpeakerDB
    from .audio._decode import Clip
    from .decision._calibration import Calibration
    from .diarization._options import SegmentOptions
    from .errors import (
        AudioError,
        DatabaseBusy,
        DatabaseError,
        DuplicateSpeaker,
        DuplicateUtterance,
        EnrollmentRefused,
        Forbidden,
        GroupNotFound,
        InputError,
        InvalidName,
        ModelError,
        ModelMismatch,
        OptedOut,
        RequestTimeout,
        SchemaError,
        ServiceBusy,
        ServiceError,
        SpeakerDBError,
        SpeakerNotFound,
        TooLarge,
        Unauthorized,
    )
    from .evaluation._evaluate import EvaluationReport
    from .services._batch import BatchFailure, BatchReport
    from .storage._indexkind import IndexChoice
    from .types import (
        ApiKey,
        AuditEntry,
        AuditSettings,
        BackupReport,
        DatabaseInfo,
        DecisionPolicy,
        EncoderInfo,
        Enrollment,
        Identification,
        Match,
        Outcome,
        QualityIssue,
        Segment,
        Speaker,
        Utterance,
        Verification,
    )
