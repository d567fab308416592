"""The services a :class:`~speakerdb.SpeakerDB` composes: enrolling, querying, the
decision settings, the audit log, the search index's administration and bulk
enrollment from a manifest. Each takes the storage and the pieces it needs, never
the facade; only the manifest reader is used from outside the package."""

from ._batch import BatchFailure, BatchReport, ManifestRow, read_manifest

__all__ = ["BatchFailure", "BatchReport", "ManifestRow", "read_manifest"]
