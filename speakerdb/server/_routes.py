"""The HTTP endpoints: each parses, checks the key, calls the library on a worker
thread and answers with the same JSON document as the CLI's ``--json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from ..errors import Forbidden
from ..types import ApiKey, to_jsonable
from . import _answers
from ._auth import check_key, confined_group, header_secret, may_see
from ._body import one_clip, read_body, uploads
from ._errors import unknown_parameter
from ._idempotency import Answer
from ._schema import ERROR_RESPONSES
from ._state import Service, outcome_of

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES)


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


# Declares the key in the OpenAPI description (securitySchemes, and security on each
# operation that needs one), so that generated clients send it; the key is read and
# checked by _needs, which tells a malformed header what is wrong with it.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="key",
    description="A key the server's operator made (`speakerdb key create`), sent as "
    "`Authorization: Bearer KEY`. A query key may identify, verify, list and read "
    "/metrics; an admin key may do everything.",
)


def _needs(scope: str) -> Callable[..., Any]:
    async def dependency(request: Request, _declared: Annotated[Any, Depends(_BEARER)]) -> ApiKey:
        svc = service(request)
        secret = header_secret(request.headers.get("authorization"))
        key = await svc.workers.run(check_key, svc.db, secret, scope)
        request.state.key = key
        _known_query(request)
        return key

    return dependency


def _known_query(request: Request) -> None:
    """Refuse a query parameter the endpoint does not take: a misspelt ``treshold``
    would otherwise be dropped, and the door decided at another threshold than asked."""
    route = request.scope.get("route")
    declared = getattr(getattr(route, "dependant", None), "query_params", None)
    if declared is None:
        return
    known = sorted(field.alias for field in declared)
    problems = [
        {"loc": ("query", name), "msg": unknown_parameter(name, known), "type": "extra"}
        for name in request.query_params
        if name not in known
    ]
    if problems:
        raise RequestValidationError(problems)


Svc = Annotated[Service, Depends(service)]
QueryKey = Annotated[ApiKey, Depends(_needs("query"))]
AdminKey = Annotated[ApiKey, Depends(_needs("admin"))]
Threshold = Annotated[
    float | None,
    Query(description="Decide at this threshold instead of the database's (a cosine by default)."),
]
ScoreNorm = Annotated[
    str | None,
    Query(description="Decide by 'none' (cosine), 'margin', 'margin-duration' or 'asnorm' scores."),
]
SpeakerName = Annotated[
    str, Path(description="The speaker's name as enrolled, URL-encoded (a space is %20).")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A retry with the same key (same API key, endpoint and body) within "
        "60 s gets the first answer instead of a second decision or enrollment; the same "
        "key with another body is refused (400).",
    ),
]
GroupName = Annotated[
    str | None,
    Query(
        description="Consider only this group's members. A key bound to a group is confined "
        "to it, and may name no other."
    ),
]
AUDIO_BODY = {
    "requestBody": {
        "required": True,
        "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}


OUTCOMES = (
    "Answered 200 whatever it decides: only `outcome` `accepted` (`accepted`: true) admits. "
    "`rejected` (verify) or `unknown` (identify): the score fell short; "
    "`not_enough_speech`: ask for a longer clip; `replay`: the clip is a copy of an enrolled "
    "clip or of a query decided within the replay window (10 minutes by default), so the "
    "same test file sent twice is a replay the second time (a retry sends the same "
    "Idempotency-Key instead); `watchlist`: the voice is on the watchlist. `reason` says "
    "why. `score` is the raw cosine; `threshold` is compared with `normalized` when a "
    "normalised score decides."
)


def _answer(model: Any) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 200 answer shaped as ``model`` (:mod:`._answers`)."""
    return {200: {"model": model, "description": "The result, as the CLI's --json."}}


class NewName(BaseModel):
    name: str = Field(description="The speaker's new name.")


@router.get("/healthz", tags=["service"])
@router.head("/healthz", tags=["service"], operation_id="healthz_head")
async def healthz() -> dict[str, str]:
    """Whether the service is up; needs no key. HEAD too, as `curl -I` and some probes
    ask."""
    return {"status": "ok"}


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, _key: QueryKey) -> dict[str, Any]:
    """The OpenAPI description; like every endpoint but ``/`` and ``/healthz``, it needs a
    key (FastAPI's own unauthenticated ``/openapi.json`` and ``/docs`` are turned off)."""
    spec: dict[str, Any] = request.app.openapi()
    return spec


@router.get("/metrics", tags=["service"], response_class=PlainTextResponse)
async def metrics(svc: Svc, key: QueryKey) -> PlainTextResponse:
    """Requests, latency and decisions in the Prometheus text format."""
    return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/info", tags=["database"])
async def info(svc: Svc, key: QueryKey) -> Any:
    """As `speakerdb info --json`. A query key's answer leaves out `path` and
    `index_path`: where the server keeps its files is the operator's business, not a
    door's."""
    described = to_jsonable(await svc.workers.run(svc.db.info))
    if key.scope != "admin":
        for where in _SERVER_PATHS:
            described.pop(where, None)
    return described


#: The fields of `info` that locate the server's files.
_SERVER_PATHS = ("path", "index_path")


@router.get("/v1/speakers", tags=["speakers"], responses=_answer(list[_answers.Speaker]))
async def list_speakers(svc: Svc, key: QueryKey) -> Any:
    """The enrolled speakers, as `speakerdb list --json` (a key bound to a group: its
    members only)."""
    found = await svc.workers.run(svc.db.speakers)
    return to_jsonable([s for s in found if may_see(key, s.groups)])


@router.get("/v1/speakers/{name}", tags=["speakers"], responses=_answer(_answers.SpeakerWithClips))
async def show_speaker(name: SpeakerName, svc: Svc, key: QueryKey) -> Any:
    """One speaker and their clips, as `speakerdb show NAME --json`."""

    def show() -> dict[str, Any]:
        speaker = svc.db.speaker(name)
        if not may_see(key, speaker.groups):
            raise Forbidden(
                f"key {key.name!r} is bound to group {key.group!r}: {name!r} is not in it"
            )
        return {"speaker": speaker, "utterances": svc.db.utterances(name)}

    return to_jsonable(await svc.workers.run(show))


@router.delete("/v1/speakers/{name}", tags=["speakers"], responses=_answer(_answers.Speaker))
async def remove_speaker(name: SpeakerName, svc: Svc, key: AdminKey) -> Any:
    """Remove a speaker with all their clips; answers the speaker as it was. Needs an admin
    key."""
    return to_jsonable(await svc.workers.run(svc.db.remove, name))


@router.patch("/v1/speakers/{name}", tags=["speakers"], responses=_answer(_answers.Speaker))
async def rename_speaker(name: SpeakerName, body: NewName, svc: Svc, key: AdminKey) -> Any:
    """Rename a speaker: the body is the JSON `{"name": NEW}`, sent with `Content-Type:
    application/json`. Needs an admin key."""
    return to_jsonable(await svc.workers.run(svc.db.rename, name, body.name))


@router.post(
    "/v1/speakers/{name}/enrollments",
    tags=["speakers"],
    responses={
        200: {
            "description": "The clips, added to a speaker enrolled already.",
            "model": _answers.Enrollment,
        },
        201: {
            "description": "A new speaker, enrolled from the clips.",
            "model": _answers.Enrollment,
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "clips": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                },
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def enroll(
    name: SpeakerName,
    request: Request,
    svc: Svc,
    key: AdminKey,
    force: Annotated[bool, Query(description="Enroll despite the quality gates.")] = False,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create speaker NAME from the clips, or add them: all of them, or none. The clips
    come as form files in a field named `clips`, or as one raw audio body. 201 when the
    speaker is new, 200 when they were enrolled already. Needs an admin key."""
    body = await read_body(request, svc.limits.max_body_bytes, svc.limits.body_timeout_s)
    files = uploads(request.headers.get("content-type", ""), body)

    def run() -> Answer:
        clips = [svc.decode(upload) for upload in files]
        result = svc.db.enroll(name, clips, force=force)
        return Answer(201 if result.created else 200, to_jsonable(result))

    return await _once(request, svc, key, body, run, idempotency_key)


@router.post(
    "/v1/identify",
    tags=["decisions"],
    responses=_answer(_answers.Identification),
    openapi_extra=AUDIO_BODY,
    description='Who speaks in the clip (a raw audio body), or "unknown"; one object. ' + OUTCOMES,
)
async def identify(
    request: Request,
    svc: Svc,
    key: QueryKey,
    threshold: Threshold = None,
    score_norm: ScoreNorm = None,
    top_k: Annotated[int, Query(ge=1, le=100, description="Candidates to list.")] = 5,
    group: GroupName = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Who speaks in the clip: the library's :class:`~speakerdb.types.Identification`."""
    confined = confined_group(key, group)
    body = await read_body(request, svc.limits.max_body_bytes, svc.limits.body_timeout_s)
    upload = one_clip(request.headers.get("content-type", ""), body)

    def run() -> Answer:
        clip = svc.decode(upload)
        result = svc.db.identify(
            clip, top_k=top_k, threshold=threshold, score_norm=score_norm, group=confined
        )
        return _decided(svc, "identify", result)

    return await _once(request, svc, key, body, run, idempotency_key)


@router.post(
    "/v1/speakers/{name}/verify",
    tags=["decisions"],
    responses=_answer(_answers.Verification),
    openapi_extra=AUDIO_BODY,
    description="Accept or reject the claim that the clip (a raw audio body) is NAME (with "
    "a group: rejected when NAME is not its member). " + OUTCOMES,
)
async def verify(
    name: SpeakerName,
    request: Request,
    svc: Svc,
    key: QueryKey,
    threshold: Threshold = None,
    score_norm: ScoreNorm = None,
    group: GroupName = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Whether the clip is NAME's: the library's :class:`~speakerdb.types.Verification`."""
    confined = confined_group(key, group)
    body = await read_body(request, svc.limits.max_body_bytes, svc.limits.body_timeout_s)
    upload = one_clip(request.headers.get("content-type", ""), body)

    def run() -> Answer:
        clip = svc.decode(upload)
        result = svc.db.verify(
            name, clip, threshold=threshold, score_norm=score_norm, group=confined
        )
        return _decided(svc, "verify", result)

    return await _once(request, svc, key, body, run, idempotency_key)


def _decided(svc: Service, operation: str, result: Any) -> Answer:
    return Answer(200, to_jsonable(result), (operation, outcome_of(result, operation)))


async def _once(
    request: Request,
    svc: Service,
    key: ApiKey,
    body: bytes,
    run: Callable[[], Answer],
    token: str | None,
) -> JSONResponse:
    """``run()`` on a worker, as asked by ``key`` (for the audit log); a retry with the
    same ``Idempotency-Key`` (``token``) gets the first answer (:mod:`._idempotency`)."""

    async def decide() -> Answer:
        answer = await svc.workers.run(_asked_by, svc, key, run)
        if answer.decision is not None:  # counted once, here, not again for a retry
            svc.metrics.decision(*answer.decision)
        return answer

    if token:
        scope = (key.name, f"{request.method} {request.url.path}?{request.url.query}", token)
        answer = await svc.idempotency.answer(scope, body, decide)
    else:
        answer = await decide()
    return JSONResponse(answer.document, status_code=answer.status)


def _asked_by(svc: Service, key: ApiKey, run: Callable[[], Answer]) -> Answer:
    with svc.db.audit.asked_by(key.name):
        return run()
