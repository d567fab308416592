"""What the app's handlers share: the database, the limits, the workers, the
idempotency cache and the metrics. One per app, on ``app.state.service``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..audio._decode import Clip, clip_from_array, clip_from_bytes
from ..errors import TooLarge
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
        """The clip in ``upload``, decoded in memory; :class:`TooLarge` past the length cap.

        Every message about the clip, the decoder's or a later refusal's, calls it as
        its client knows it (:attr:`Upload.called`). A file name is also its source,
        stored with it, as the CLI stores a path; a raw body's stand-in name is not.
        """
        clip = clip_from_bytes(upload.data, called=upload.called)
        self.check_length(clip)
        return replace(clip, source=upload.filename) if upload.filename else clip

    def samples_clip(self, samples: Any, rate: int) -> Clip:
        return clip_from_array(samples, rate, source="stream")

    def check_length(self, clip: Clip) -> None:
        cap = self.limits.max_clip_s
        if clip.duration_s > cap:
            raise TooLarge(
                f"{clip.label}: the clip is {clip.duration_s:.0f} s long; the service "
                f"accepts at most {cap:.0f} s"
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
