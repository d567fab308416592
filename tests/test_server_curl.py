"""`speakerdb serve` as a developer in another language meets it, with only the README
and curl: the mistakes such a client makes first (a clip sent as a form or not at all,
a key without `Bearer `, a threshold that is not a number, a JSON body without its
content type, a stream without a key) are each answered with the fix in HTTP terms.

A real server process on a loopback port, GE2E (model `resemblyzer`) on real speech.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _serving import Reply, Server, make_keys, multipart, no_traceback, stop_quietly

from speakerdb.types import Outcome

pytest.importorskip("fastapi")
from speakerdb.server import _answers

websockets_sync = pytest.importorskip("websockets.sync.client")
ConnectionClosed = pytest.importorskip("websockets.exceptions").ConnectionClosed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(corpus: Path) -> bytes:
    """One real 3 s speech clip (WAV bytes)."""
    return sorted((corpus / "concat3s" / "asterisk-allison").glob("*.wav"))[0].read_bytes()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, clip: bytes
) -> Iterator[tuple[Server, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("curl")
    keys = make_keys(folder / "speakers.db")
    server = Server(folder / "speakers.db", log=folder / "log").start()
    body, kind = multipart([("allison.wav", clip)])
    enrolled = server.request(
        "POST", "/v1/speakers/allison/enrollments", key=keys["admin"], body=body, content_type=kind
    )
    assert enrolled.status == 201, enrolled.body
    yield server, keys
    stop_quietly(server)
    assert "Traceback" not in server.log()


def refused(reply: Reply, status: int, kind: str, *fragments: str) -> dict:
    assert reply.status == status, reply.body
    no_traceback(reply)
    error = reply.json["error"]
    assert error["type"] == kind, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return dict(error)


def rename(
    server: Server, key: str, body: bytes, content_type: str | None = "application/json"
) -> Reply:
    """PATCH allison with ``body``: a rename, or a rename to her own name."""
    return server.request(
        "PATCH", "/v1/speakers/allison", key=key, body=body, content_type=content_type
    )


DECISIONS = ["/v1/identify", "/v1/speakers/allison/verify"]


@pytest.mark.parametrize("path", DECISIONS)
def test_a_clip_sent_as_a_form_is_told_to_send_the_raw_body(
    served: tuple[Server, dict[str, str]], clip: bytes, path: str
) -> None:
    server, keys = served
    # curl -F clip=@door.wav, as the enrollment takes clips: not "a damaged file".
    body, kind = multipart([("door.wav", clip)], field="clip")
    reply = server.request("POST", path, key=keys["query"], body=body, content_type=kind)
    refused(reply, 400, "InputError", "raw request body", "--data-binary @clip.wav")
    # The same clip sent as the README says is decided.
    assert server.request("POST", path, key=keys["query"], body=clip).status == 200


@pytest.mark.parametrize("path", [*DECISIONS, "/v1/speakers/bob/enrollments"])
def test_an_empty_or_unreadable_body_is_called_the_request_body(
    served: tuple[Server, dict[str, str]], path: str
) -> None:
    server, keys = served
    reply = server.request("POST", path, key=keys["admin"], body=b"", content_type="audio/wav")
    refused(reply, 400, "AudioError", "the request body is empty", "--data-binary")
    notes = b"these are meeting notes, not audio" * 20
    reply = server.request("POST", path, key=keys["admin"], body=notes, content_type="audio/wav")
    error = refused(reply, 400, "AudioError", "the request body: not a readable audio file")
    assert "<bytes>" not in error["message"]
    speakers = server.request("GET", "/v1/speakers", key=keys["query"]).json
    assert [s["name"] for s in speakers] == ["allison"]


def test_every_401_names_its_scheme_and_a_key_without_bearer_is_told_so(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served
    for headers in ({}, {"Authorization": "Bearer sdb_not-a-key"}):
        reply = server.request("GET", "/v1/speakers", headers=headers)
        refused(reply, 401, "Unauthorized")
        assert reply.headers["www-authenticate"].startswith("Bearer")
    # The key itself, without the scheme: it was sent, so "needs a key" would mislead.
    bare = server.request("GET", "/v1/speakers", headers={"Authorization": keys["query"]})
    refused(bare, 401, "Unauthorized", "must be `Bearer KEY`", "without `Bearer `")
    basic = server.request("GET", "/v1/speakers", headers={"Authorization": "Basic dTpw"})
    refused(basic, 401, "Unauthorized", "must be `Bearer KEY`", "'Basic'")
    empty = server.request("GET", "/v1/speakers", headers={"Authorization": "Bearer"})
    refused(empty, 401, "Unauthorized", "no key after Bearer")
    # Bearer in any case, as HTTP's schemes are.
    ok = server.request("GET", "/v1/speakers", headers={"Authorization": f"bearer {keys['query']}"})
    assert ok.status == 200


def test_a_threshold_that_is_not_a_number_names_the_threshold_fix(
    served: tuple[Server, dict[str, str]], clip: bytes
) -> None:
    server, keys = served
    for value in ("high", ""):
        reply = server.request(
            "POST", f"/v1/identify?threshold={value}", key=keys["query"], body=clip
        )
        error = refused(reply, 422, "InputError", "query.threshold", "leave it out")
        assert error["fix"] == {
            "code": "threshold",
            "args": {},
            "by": "client",
            "hint": error["message"].split("; ", 1)[1],
        }
    # The fix applied: the database's threshold decides.
    assert server.request("POST", "/v1/identify", key=keys["query"], body=clip).status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b'{"name": "allie"}', "application/x-www-form-urlencoded", "body: Input should be"),
        (b"", None, "body: Field required"),
        (b'{"name": ', "application/json", "body: JSON decode error"),
        (b'{"nom": "allie"}', "application/json", "body.name: Field required"),
    ],
    ids=["curl-d-without-content-type", "no-body", "broken-json", "no-name"],
)
def test_a_rename_without_a_json_body_says_how_to_send_one(
    served: tuple[Server, dict[str, str]], body: bytes, content_type: str | None, fragment: str
) -> None:
    server, keys = served
    reply = rename(server, keys["admin"], body, content_type)
    refused(reply, 422, "InputError", fragment, "`Content-Type: application/json`")
    fixed = rename(server, keys["admin"], b'{"name": "allison"}')
    assert fixed.status == 200 and fixed.json["name"] == "allison"


@pytest.mark.parametrize(
    ("hello", "fragment"),
    [({}, '`"key": KEY` in the first frame'), ({"key": "sdb_wrong"}, "revoked or mistyped")],
    ids=["no-key", "unknown-key"],
)
def test_a_stream_without_a_key_is_told_where_to_send_it(
    served: tuple[Server, dict[str, str]], hello: dict[str, str], fragment: str
) -> None:
    server, _ = served
    frames = []
    with websockets_sync.connect(server.ws_url + "/v1/stream/identify") as ws:
        ws.send(json.dumps({"format": "s16le", "sample_rate": 16000, **hello}))
        # Closed with 4401, which the client raises on: the frames and the code say why.
        with contextlib.suppress(ConnectionClosed):
            for message in ws:
                frames.append(json.loads(message))
        close = ws.protocol.close_rcvd
    assert close is not None and close.code == 4401
    # The whole message in a frame first: a close reason holds only 123 bytes.
    assert [f["type"] for f in frames] == ["error"]
    error = frames[0]["error"]
    assert error["type"] == "Unauthorized" and fragment in error["message"]
    assert len(close.reason.encode()) <= 123 and error["message"].startswith(close.reason)


def test_the_openapi_description_says_how_to_send_a_key_and_what_enroll_answers(
    served: tuple[Server, dict[str, str]], clip: bytes
) -> None:
    """What a client generator (openapi-generator for Go, TypeScript...) reads: the key
    scheme, on every operation that needs it; enroll's 201; the Idempotency-Key header;
    what a speaker's name in a path is."""
    server, keys = served
    spec = server.request("GET", "/openapi.json", key=keys["query"]).json
    assert spec["components"]["securitySchemes"]["key"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["key"]["description"],
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = operation.get("security")
            if path == "/healthz":
                assert declared is None, path
            else:
                assert declared == [{"key": []}], (method, path)
    enroll = spec["paths"]["/v1/speakers/{name}/enrollments"]["post"]
    assert {"200", "201"} <= set(enroll["responses"])
    assert "admin key" in enroll["description"]
    for path in ("/v1/identify", "/v1/speakers/{name}/verify"):
        parameters = {p["name"]: p for p in spec["paths"][path]["post"]["parameters"]}
        assert parameters["Idempotency-Key"]["in"] == "header"
        assert "60 s" in parameters["Idempotency-Key"]["description"]
    name = spec["paths"]["/v1/speakers/{name}/verify"]["post"]["parameters"][0]
    assert name["name"] == "name" and "URL-encoded" in name["description"]
    # The header, declared so, is honoured as before: a retry gets the first decision.
    ask = {"key": keys["query"], "headers": {"Idempotency-Key": "openapi-1"}}
    first = server.request("POST", "/v1/identify", body=clip, **ask)  # type: ignore[arg-type]
    again = server.request("POST", "/v1/identify", body=clip, **ask)  # type: ignore[arg-type]
    assert first.status == again.status == 200 and first.body == again.body


@pytest.mark.parametrize("new", ["front/back", ".", ".."])
def test_a_name_no_url_can_reach_is_refused(
    served: tuple[Server, dict[str, str]], clip: bytes, new: str
) -> None:
    """A speaker named 'front/back' could be made (by a rename) but never reached again
    over HTTP: /v1/speakers/front%2Fback is decoded to two segments, and URL libraries
    (curl, WHATWG URL) drop '.' and '..' segments."""
    server, keys = served
    reply = rename(server, keys["admin"], json.dumps({"name": new}).encode())
    refused(reply, 400, "InvalidName", "pick another name")
    if "/" not in new:  # sent as the path segment itself, percent-encoded
        path = f"/v1/speakers/{new.replace('.', '%2E')}/enrollments"
        reply = server.request("POST", path, key=keys["admin"], body=clip)
        refused(reply, 400, "InvalidName", "URL")
    speakers = server.request("GET", "/v1/speakers", key=keys["query"]).json
    assert [s["name"] for s in speakers] == ["allison"]


@pytest.mark.parametrize(
    ("path", "typo", "meant"),
    [
        ("/v1/identify?treshold=0.99", "treshold", "threshold"),
        ("/v1/speakers/allison/verify?threshold=0.99&scorenorm=none", "scorenorm", "score_norm"),
        ("/v1/speakers/allison/enrollments?forced=true", "forced", "force"),
        ("/v1/speakers?group=door-a", "group", None),
    ],
    ids=["identify", "verify", "enroll", "list"],
)
def test_a_query_parameter_the_endpoint_does_not_take_is_refused(
    served: tuple[Server, dict[str, str]], clip: bytes, path: str, typo: str, meant: str | None
) -> None:
    """A misspelt threshold is not dropped, deciding at the database's threshold instead
    of the one asked: the client is told the parameters the endpoint takes."""
    server, keys = served
    before = server.request("GET", "/v1/speakers/allison", key=keys["query"]).json
    method = "GET" if path == "/v1/speakers?group=door-a" else "POST"
    reply = server.request(method, path, key=keys["admin"], body=clip)
    fragment = f"did you mean {meant!r}" if meant else "it takes: none"
    refused(reply, 422, "InputError", f"query.{typo}: not a parameter", fragment)
    assert server.request("GET", "/v1/speakers/allison", key=keys["query"]).json == before
    # Without a key the answer is still 401: the parameters are checked after the key.
    refused(server.request(method, path, body=clip), 401, "Unauthorized")


@pytest.mark.parametrize(("name", "guess"), [("alison", "did you mean 'allison'?"), ("zed", "")])
def test_every_unknown_speaker_names_the_fix_a_client_branches_on(
    served: tuple[Server, dict[str, str]], clip: bytes, name: str, guess: str
) -> None:
    server, keys = served
    reply = server.request("POST", f"/v1/speakers/{name}/verify", key=keys["query"], body=clip)
    error = refused(reply, 404, "SpeakerNotFound", f"no speaker named {name!r}", guess)
    assert error["fix"] == {
        "code": "list_speakers",
        "args": {},
        "by": "client",
        "hint": "GET /v1/speakers lists who is enrolled",
    }


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/speakers/allison", "DELETE, GET, PATCH"),
        ("GET", "/v1/identify", "POST"),
        ("DELETE", "/healthz", "GET, HEAD"),
    ],
)
def test_a_method_the_path_does_not_take_is_told_the_ones_it_does(
    served: tuple[Server, dict[str, str]], method: str, path: str, allowed: str
) -> None:
    """405 with Allow, which HTTP requires, naming every method of the path (not one
    route's); the message says them too."""
    server, keys = served
    reply = server.request(method, path, key=keys["admin"])
    refused(reply, 405, "InputError", f"this path takes {allowed}")
    assert reply.headers["allow"] == allowed


def test_healthz_answers_head_as_curl_i_asks(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    reply = server.request("HEAD", "/healthz")
    assert reply.status == 200 and reply.body == b""


def test_a_raw_body_refused_by_enrollment_is_called_the_request_body(
    served: tuple[Server, dict[str, str]], clip: bytes
) -> None:
    """Not '<array>', the library's word for a clip without a name (the quality gates'
    refusals name the clip the same way, but the test session turns them off)."""
    server, keys = served
    path = "/v1/speakers/carol/enrollments"
    reply = server.request("POST", path, key=keys["admin"], body=clip)
    refused(reply, 409, "DuplicateUtterance", "the request body: this audio is enrolled already")
    # A form's file keeps its own name.
    body, kind = multipart([("door.wav", clip)])
    named = server.request("POST", path, key=keys["admin"], body=body, content_type=kind)
    refused(named, 409, "DuplicateUtterance", "door.wav: this audio is enrolled already")


def _clipped(clip: bytes, gain: float) -> bytes:
    """``clip`` turned up by ``gain`` and clipped at full scale: refused by enrollment's
    clipping gate, which the test session leaves on."""
    samples, rate = sf.read(io.BytesIO(clip), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples * gain, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_every_clip_of_a_form_without_a_file_name_is_named_by_its_place(
    served: tuple[Server, dict[str, str]], clip: bytes
) -> None:
    """Two clips refused at once, each named; a place names a clip in messages only,
    never as the source stored with it."""
    server, keys = served
    path, admin = "/v1/speakers/carol/enrollments", keys["admin"]
    both = [(None, _clipped(clip, 20)), (None, _clipped(clip, 30))]
    body, kind = multipart(both)
    reply = server.request("POST", path, key=admin, body=body, content_type=kind)
    error = refused(reply, 422, "EnrollmentRefused", "form file 1 of 2: ", "form file 2 of 2: ")
    assert "<bytes>" not in error["message"] and "<array>" not in error["message"], error
    # A file the decoder refuses is named the same way, beside a named one.
    body, kind = multipart([("door.wav", clip), (None, b"not audio" * 100)])
    reply = server.request("POST", path, key=admin, body=body, content_type=kind)
    refused(reply, 400, "AudioError", "form file 2 of 2: not a readable audio file")
    body, kind = multipart(both)
    forced = server.request("POST", path + "?force=true", key=admin, body=body, content_type=kind)
    assert forced.status == 201, forced.body
    try:
        added = forced.json["added"]
        assert [u["source"] for u in added] == [None, None], added
        stored = server.request("GET", "/v1/speakers/carol", key=admin).json["utterances"]
        assert [u["source"] for u in stored] == [None, None], stored
    finally:
        assert server.request("DELETE", "/v1/speakers/carol", key=admin).status == 200


def test_the_decisions_description_names_every_outcome(
    served: tuple[Server, dict[str, str]],
) -> None:
    """A client that reads only /openapi.json learns that a decision is 200 whatever it
    decides, every outcome it may get (a replay of the same test file among them), and
    that only `accepted` admits."""
    server, keys = served
    paths = server.request("GET", "/openapi.json", key=keys["query"]).json["paths"]
    for path in ("/v1/identify", "/v1/speakers/{name}/verify"):
        text = paths[path]["post"]["description"]
        assert "200 whatever it decides" in text and "only `outcome` `accepted`" in text
        for outcome in Outcome:
            assert f"`{outcome.value}`" in text, (path, outcome)


def test_answers_have_the_fields_the_openapi_description_gives(
    served: tuple[Server, dict[str, str]], clip: bytes, corpus: Path
) -> None:
    """What a generated client decodes: each endpoint's 200/201 answer, as the real
    service gives it, has every field its schema in /openapi.json names, of its type."""
    server, keys = served
    admin, query = keys["admin"], keys["query"]
    spec = server.request("GET", "/openapi.json", key=query).json

    def documented(method: str, path: str, status: str = "200") -> str:
        schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
        found = schema["schema"].get("$ref") or schema["schema"]["items"]["$ref"]
        return str(found).rsplit("/", 1)[1]

    other = sorted((corpus / "concat3s" / "asterisk-carlo-it").glob("*.wav"))[0].read_bytes()
    speaker = "/v1/speakers/{name}"
    answers = [
        ("post", "/v1/identify", server.request("POST", "/v1/identify", key=query, body=clip)),
        (
            "post",
            speaker + "/verify",
            server.request("POST", "/v1/speakers/allison/verify", key=query, body=clip),
        ),
        ("get", "/v1/speakers", server.request("GET", "/v1/speakers", key=query)),
        ("get", speaker, server.request("GET", "/v1/speakers/allison", key=query)),
        ("patch", speaker, rename(server, admin, b'{"name": "allison"}')),
        (
            "post",
            speaker + "/enrollments",
            server.request("POST", "/v1/speakers/carol/enrollments", key=admin, body=other),
        ),
        ("delete", speaker, server.request("DELETE", "/v1/speakers/carol", key=admin)),
    ]
    for method, path, reply in answers:
        assert reply.status in (200, 201), (path, reply.body)
        model = getattr(_answers, documented(method, path, str(reply.status)))
        for item in reply.json if isinstance(reply.json, list) else [reply.json]:
            model.model_validate(item)
