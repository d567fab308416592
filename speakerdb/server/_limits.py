"""The service's caps and timeouts, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may cost. A body over ``max_body_bytes`` or a clip longer than
    ``max_clip_s`` is refused with 413; a body that does not arrive within
    ``body_timeout_s`` with 408. ``workers`` library calls run at once and
    ``queue`` more may wait; beyond that a request gets 503 with ``Retry-After``, as
    does one whose call takes over ``work_timeout_s``. A stream holds at most
    ``stream_max_s`` of audio and is closed when nothing arrives for
    ``stream_idle_s``; it sends a decision at most every ``decision_interval_s``.
    """

    max_body_bytes: int = 64 * 1024 * 1024
    max_clip_s: float = 120.0
    body_timeout_s: float = 30.0
    workers: int = 2
    queue: int = 64
    work_timeout_s: float = 120.0
    stream_max_s: float = 60.0
    stream_idle_s: float = 30.0
    decision_interval_s: float = 1.0
    #: How long a decision is kept for a retry with the same ``Idempotency-Key``.
    idempotency_s: float = 60.0
