"""What the app's handlers share: the database, the limits, the workers, the
idempotency cache and the metrics. One per app, on ``app.state.service``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..audio._decode import Clip, clip_from_array, clip_from_bytes
from ..errors import AudioError, TooLarge
from ._idempotency import IdempotencyCache
from ._metrics import Metrics
from ._work import Workers

if TYPE_CHECKING:
    from .._facade import SpeakerDB
    from ..types import Identification, Verification
    from ._body import Upload
    from ._limits import Limits

__all__ = ["Service", "outcome_of"]


@dataclass
class Service:
    db: SpeakerDB
    limits: Limits
    workers: Workers
    idempotency: IdempotencyCache
    metrics: Metrics

    @classmethod
    def start(cls, db: SpeakerDB, limits: Limits) -> Service:
        workers = Workers(limits.workers, limits.queue, limits.work_timeout_s)
        return cls(db, limits, workers, IdempotencyCache(limits.idempotency_s), Metrics())

    def decode(self, upload: Upload) -> Clip:
        """The clip in ``upload``, decoded in memory; :class:`TooLarge` past the length cap."""
        try:
            clip = clip_from_bytes(upload.data)
        except AudioError as exc:
            # Named as the client named the file, which the CLI's messages do too; a raw
            # body has no name, and "<bytes>" would be the library's word for it.
            named = exc.problem.replace("<bytes>", upload.filename or "the request body", 1)
            raise AudioError(named, fix=exc.fix, **exc.fix_args) from exc
        self.check_length(clip.duration_s)
        return replace(clip, source=upload.filename) if upload.filename else clip

    def samples_clip(self, samples: Any, rate: int) -> Clip:
        return clip_from_array(samples, rate, source="stream")

    def check_length(self, seconds: float) -> None:
        cap = self.limits.max_clip_s
        if seconds > cap:
            raise TooLarge(
                f"the clip is {seconds:.0f} s long; the service accepts at most {cap:.0f} s"
            )


def outcome_of(result: Identification | Verification, operation: str) -> str:
    """The decision's outcome: the result's own when it has one, else accepted, or
    rejected (verify) or unknown (identify)."""
    own = getattr(result, "outcome", None)
    if own is not None:
        return str(getattr(own, "value", own))
    if result.accepted:
        return "accepted"
    return "rejected" if operation == "verify" else "unknown"
