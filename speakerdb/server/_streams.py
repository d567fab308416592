"""The WebSocket streams ``/v1/stream/verify/{name}``, ``/v1/stream/identify`` and
``/v1/stream/segments``.

The client sends, in order: one JSON text frame ``{"format": "s16le" | "f32le",
"sample_rate": R}`` (plus ``"key"`` when it cannot send an ``Authorization``
header, as browsers cannot, and ``"group"`` to consider only a group's members; a key
bound to a group is confined to it); binary frames of mono samples in that format; then
``{"type": "end"}``. The server answers with decision frames over all the audio so
far, at most one every ``decision_interval_s`` while audio arrives and a last one
(``"final": true``) after ``end``, then closes normally (1000)::

    {"type": "decision", "final": false, "seconds": 2.1, "outcome": "accepted",
     "accepted": true, "score": 0.91, "threshold": 0.75, "result": {...}}

``outcome`` is ``not_enough_speech`` (and ``result`` absent) until there is enough
speech to decide. A stream that fails is closed with ``4000 + status``: 4401 no or
an unknown key, 4403 a key of the wrong scope, 4400 a bad frame, 4404 no such
speaker, 4408 nothing sent for ``stream_idle_s``, 4413 more than ``stream_max_s``
of audio, 4503 busy; an error frame ``{"type": "error", "error": {...}}`` precedes
the close (whose reason is, for 4401 and 4403, the message cut to the 123 bytes a
close reason may hold).

``/v1/stream/segments`` takes the same frames and answers, instead of decisions,
who spoke when (:meth:`SpeakerDB.segments_live <speakerdb.SpeakerDB.segments_live>`):
one frame per segment as soon as no later audio can change it (about 12 s after
it ends), then ``{"type": "end", "seconds": S}`` after the client's ``end``::

    {"type": "segment", "start": 3.2, "end": 7.9, "speaker": "alice", "label": "alice",
     "score": 0.91, "decision_score": 0.91}

A segments stream may last as long as a recording ``segments`` accepts (4 hours),
not ``stream_max_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import (
    AudioError,
    Forbidden,
    InputError,
    RequestTimeout,
    ServiceError,
    SpeakerDBError,
    TooLarge,
    Unauthorized,
)
from ..types import ApiKey, Segment, to_jsonable
from ._auth import STREAM, bearer_secret, check_key, confined_group
from ._fixes import document
from ._state import Service, outcome_of

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()

_FORMATS = {"s16le": ("<i2", 1 / 32768), "f32le": ("<f4", 1.0)}


@router.websocket("/v1/stream/verify/{name}")
async def stream_verify(websocket: WebSocket, name: str) -> None:
    await _serve(websocket, "verify", name)


@router.websocket("/v1/stream/identify")
async def stream_identify(websocket: WebSocket) -> None:
    await _serve(websocket, "identify", None)


@router.websocket("/v1/stream/segments")
async def stream_segments(websocket: WebSocket) -> None:
    await _serve(websocket, "segments", None)


async def _serve(websocket: WebSocket, operation: str, name: str | None) -> None:
    svc: Service = websocket.app.state.service
    started = time.perf_counter()
    code = 1000
    await websocket.accept()
    try:
        await _run(websocket, svc, operation, name)
        await websocket.close(1000)
    except (Unauthorized, Forbidden) as exc:
        # The close reason holds at most 123 bytes: the whole message comes first, in an
        # error frame, as for every other failure.
        code = 4000 + exc.http_status
        reason = str(exc).encode()[:120].decode(errors="ignore")
        await _fail(websocket, exc, code, reason=reason)
    except SpeakerDBError as exc:
        code = 4000 + exc.http_status
        await _fail(websocket, exc, code)
    except WebSocketDisconnect:
        code = 1001
    except Exception as exc:  # logged here; the client gets a close code, no traceback
        log.error("unexpected error in a %s stream", operation, exc_info=exc)
        code = 1011
        await _fail(websocket, ServiceError(f"unexpected {type(exc).__name__}"), code)
    finally:
        route = "/v1/stream/verify/{name}" if name is not None else f"/v1/stream/{operation}"
        svc.metrics.request("WS", route, code, time.perf_counter() - started)


async def _run(websocket: WebSocket, svc: Service, operation: str, name: str | None) -> None:
    """One accepted stream: its first frame read, its key checked, its group and claimed
    speaker (``name``) found, then its audio taken and decided until it ends. Errors
    propagate to :func:`_serve`, which closes the stream with their code."""
    hello = await _hello(websocket, svc)
    secret = bearer_secret(websocket.headers.get("authorization")) or hello.get("key")
    key = await svc.workers.run(
        check_key, svc.db, secret if isinstance(secret, str) else None, "query", STREAM
    )
    asked = hello.get("group")
    if asked is not None and not isinstance(asked, str):
        raise InputError('"group" in the first frame is a group\'s name')
    group = confined_group(key, asked)
    if name is not None:
        await svc.workers.run(svc.db.speaker, name)  # 4404 at once, not after the audio
    if operation == "segments":
        await _SegmentStream(svc, websocket, hello, group).run()
        return
    stream = _Stream(svc, websocket, key, operation, name, hello, group)
    try:
        await stream.run()
    finally:
        stream.cancel()


async def _hello(websocket: WebSocket, svc: Service) -> dict[str, Any]:
    message = await _receive(websocket, svc.limits.stream_idle_s)
    text = message.get("text")
    try:
        hello = json.loads(text) if text is not None else None
    except ValueError:
        hello = None
    if not isinstance(hello, dict):
        raise InputError(
            'the first frame must be JSON text: {"format": "s16le" or "f32le", '
            '"sample_rate": R, "key": KEY}'
        )
    return hello


async def _receive(websocket: WebSocket, idle_s: float) -> dict[str, Any]:
    try:
        message = dict(await asyncio.wait_for(_next(websocket), idle_s))
    except asyncio.TimeoutError:
        raise RequestTimeout(f"nothing arrived for {idle_s:.0f} s; the stream is closed") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message


async def _next(websocket: WebSocket) -> Any:
    return await websocket.receive()


async def _fail(
    websocket: WebSocket, exc: SpeakerDBError, code: int, reason: str | None = None
) -> None:
    try:
        await websocket.send_json({"type": "error", **document(exc)})
        await websocket.close(code, reason=reason or type(exc).__name__)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away first


class _Stream:
    """One stream's audio so far and its decisions."""

    def __init__(
        self,
        svc: Service,
        websocket: WebSocket,
        key: ApiKey,
        operation: str,
        name: str | None,
        hello: dict[str, Any],
        group: str | None = None,
    ) -> None:
        self.svc, self.websocket, self.key = svc, websocket, key
        self.operation, self.name, self.group = operation, name, group
        self.dtype, self.scale, self.rate = _format(hello)
        self.chunks: list[np.ndarray] = []
        self.frames = 0
        self.decided_frames = 0
        self.last_decision = 0.0
        self.pending: asyncio.Task[None] | None = None
        self.sending = asyncio.Lock()
        # Each decision is over all the audio so far, so it overlaps the stream's earlier
        # ones: the replay check must not take them for replays of each other.
        self.session = f"stream-{uuid.uuid4().hex}"

    async def run(self) -> None:
        """Take audio until ``end``, deciding along the way; then the final decision."""
        while True:
            message = await _receive(self.websocket, self.svc.limits.stream_idle_s)
            self._raise_failure()
            if message.get("bytes") is not None:
                self._add(message["bytes"])
                self._maybe_decide()
                continue
            if _is_end(message.get("text")):
                if self.pending is not None:
                    await self.pending
                    self._raise_failure()
                await self._decide(final=True)
                return
            raise InputError('a text frame must be {"type": "end"}; audio comes in binary frames')

    def _add(self, data: bytes) -> None:
        samples = _decoded(data, self.dtype, self.scale)
        self.frames += len(samples)
        cap = self.svc.limits.stream_max_s
        if self.frames / self.rate > cap:
            raise TooLarge(f"a stream holds at most {cap:.0f} s of audio; end it and start another")
        self.chunks.append(samples)

    def _maybe_decide(self) -> None:
        if self.pending is not None and not self.pending.done():
            return
        now = time.monotonic()
        if now - self.last_decision < self.svc.limits.decision_interval_s:
            return
        self.pending = asyncio.create_task(self._decide(final=False))

    def cancel(self) -> None:
        """Drop the decision under way, if any: the stream is over."""
        if self.pending is not None and not self.pending.done():
            self.pending.cancel()

    def _raise_failure(self) -> None:
        if self.pending is not None and self.pending.done() and self.pending.exception():
            raise self.pending.exception()  # type: ignore[misc]

    async def _decide(self, final: bool) -> None:
        self.last_decision = time.monotonic()
        self.decided_frames = self.frames
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        frame: dict[str, Any] = {"type": "decision", "final": final}
        frame["seconds"] = round(len(samples) / self.rate, 3)
        try:
            result = await self.svc.workers.run(self._call, samples)
        except AudioError as exc:
            frame |= {"outcome": "not_enough_speech", "accepted": False, "score": None}
            frame |= {"threshold": None, "message": str(exc)}
        else:
            outcome = outcome_of(result, self.operation)
            self.svc.metrics.decision(self.operation, outcome)
            frame |= _decision_fields(result, outcome)
        async with self.sending:
            await self.websocket.send_json(frame)

    def _call(self, samples: np.ndarray) -> Any:
        clip = self.svc.samples_clip(samples, self.rate)
        with self.svc.db.audit.asked_by(self.key.name):
            if self.name is not None:
                return self.svc.db.verify(
                    self.name, clip, replay_session=self.session, group=self.group
                )
            return self.svc.db.identify(clip, replay_session=self.session, group=self.group)


class _SegmentStream:
    """One segments stream: each binary frame is pushed, in turn, to a live segmenter on a
    worker thread; the segments it settles are sent as they come."""

    def __init__(
        self, svc: Service, websocket: WebSocket, hello: dict[str, Any], group: str | None
    ) -> None:
        self.svc, self.websocket, self.group = svc, websocket, group
        self.dtype, self.scale, self.rate = _format(hello)

    async def run(self) -> None:
        live = await self.svc.workers.run(self._live)
        while True:
            message = await _receive(self.websocket, self.svc.limits.stream_idle_s)
            if message.get("bytes") is not None:
                samples = _decoded(message["bytes"], self.dtype, self.scale)
                await self._send(await self.svc.workers.run(live.push, samples))
                continue
            if _is_end(message.get("text")):
                await self._send(await self.svc.workers.run(live.end))
                await self.websocket.send_json({"type": "end", "seconds": live.seconds})
                return
            raise InputError('a text frame must be {"type": "end"}; audio comes in binary frames')

    def _live(self) -> Any:
        return self.svc.db.segments_live(self.rate, group=self.group)

    async def _send(self, found: list[Segment]) -> None:
        for segment in found:
            await self.websocket.send_json({"type": "segment", **segment.to_dict()})


def _decoded(data: bytes, dtype: str, scale: float) -> np.ndarray:
    """The float32 samples of one binary frame."""
    width = np.dtype(dtype).itemsize
    if len(data) % width:
        raise InputError(
            f"a binary frame must hold whole {width}-byte samples, got {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype).astype(np.float32) * scale


def _decision_fields(result: Any, outcome: str) -> dict[str, Any]:
    if hasattr(result, "matches"):  # an identification
        best = result.best
        score = None if best is None else best.decision_score
        extra = {"speaker": result.speaker}
    else:
        score = result.score if result.normalized is None else result.normalized
        extra = {"speaker": result.speaker}
    return {
        "outcome": outcome,
        "accepted": result.accepted,
        "score": score,
        "threshold": result.threshold,
        **extra,
        "result": to_jsonable(result),
    }


def _format(hello: dict[str, Any]) -> tuple[str, float, int]:
    fmt = hello.get("format")
    if fmt not in _FORMATS:
        raise InputError(f'"format" must be "s16le" or "f32le", got {fmt!r}')
    rate = hello.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int) or not 4000 <= rate <= 384000:
        raise InputError(
            f'"sample_rate" must be a whole number of Hz from 4000 to 384000, got {rate!r}'
        )
    dtype, scale = _FORMATS[fmt]
    return dtype, scale, rate


def _is_end(text: str | None) -> bool:
    if text is None:
        return False
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "end"
