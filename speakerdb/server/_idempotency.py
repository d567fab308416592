"""A retried decision gets the first answer: requests with the same
``Idempotency-Key`` header (from the same key, to the same endpoint, with the same
body) within the window are answered with the first one's response, not decided
again. A door controller that lost the answer to a network blip can then retry
safely; the audit log and the replay check see one decision.

A retry that arrives while the first is still being decided waits for it. Only
successful answers are kept: an error (a busy service, say) may be retried for real.
The same header with another body is refused (400): it is another request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..errors import InputError

__all__ = ["Answer", "IdempotencyCache"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to keep: its status and JSON document, and for a decision its
    operation and outcome (for the metrics)."""

    status: int
    document: object
    decision: tuple[str, str] | None = None


@dataclass(slots=True)
class _Entry:
    body_digest: str
    expires: float
    answer: asyncio.Future[Answer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IdempotencyCache:
    """Answers by ``(key name, endpoint, Idempotency-Key)`` for ``window_s`` seconds."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._entries: dict[tuple[str, str, str], _Entry] = {}

    async def answer(
        self,
        scope: tuple[str, str, str],
        body: bytes,
        decide: Callable[[], Awaitable[Answer]],
    ) -> Answer:
        """The answer kept for ``scope``, or ``decide()``'s, kept if it succeeded."""
        now = time.monotonic()
        self._expire(now)
        digest = hashlib.sha256(body).hexdigest()
        entry = self._entries.get(scope)
        if entry is not None:
            if entry.body_digest != digest:
                raise InputError(
                    f"Idempotency-Key {scope[2]!r} was used for another request in the last "
                    f"{self._window_s:.0f} s; use a new key for a new request"
                )
            return await asyncio.shield(entry.answer)
        entry = _Entry(digest, now + self._window_s)
        self._entries[scope] = entry
        try:
            answer = await decide()
        except BaseException as exc:
            del self._entries[scope]  # a failure is not kept: a retry decides again
            entry.answer.set_exception(exc)
            entry.answer.exception()  # retrieved: no "never retrieved" warning
            raise
        entry.answer.set_result(answer)
        return answer

    def _expire(self, now: float) -> None:
        for scope in [s for s, e in self._entries.items() if e.expires <= now and e.answer.done()]:
            del self._entries[scope]
