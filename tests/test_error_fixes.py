"""The fix an error names, spelled for the front end that shows it.

A client of `speakerdb serve` is told the endpoint to call or the request field to
send (`GET /v1/speakers`, `force=true`), never a `speakerdb` command it cannot run
nor a `--flag`; a fix only the server's operator can apply says so. The CLI still
names its command or flag, and the library (`str(exc)`) its Python spelling. The
service's cases go through a real server process on a loopback port.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _serving import Reply, Server, make_keys, multipart, no_traceback, stop_quietly
from conftest import FakeEncoder, recording, voice
from test_server import bad_requests, clips, pcm16, stream
from typer.testing import CliRunner

from speakerdb import SpeakerDB, errors
from speakerdb.cli import app
from speakerdb.cli._fixes import CLI_FIXES
from speakerdb.errors import (
    PYTHON_FIXES,
    DatabaseBusy,
    Fix,
    InputError,
    SchemaError,
    SpeakerDBError,
)
from speakerdb.services import read_manifest
from speakerdb.types import to_jsonable

pytest.importorskip("fastapi")
from speakerdb.server._fixes import HTTP_FIXES, OPERATOR_FIXES, document

__all__ = ["clips"]  # the real clips' fixture

CLI_COMMAND = "`speakerdb "


def names_no_command(text: str) -> bool:
    """Whether ``text`` names no `speakerdb` command and no --flag: nothing an HTTP
    client could take for its own fix."""
    return CLI_COMMAND not in text and " --" not in text and not text.startswith("--")


def client_may_read(text: str) -> bool:
    """Whether each clause of ``text`` that names a command or a flag says it is the
    server's operator's."""
    return all(names_no_command(clause) or "operator" in clause for clause in text.split(";"))


# -- the spellings ---------------------------------------------------------------------


@pytest.mark.parametrize("fix", list(Fix), ids=lambda f: f.value)
def test_every_fix_has_a_spelling_in_every_front_end(fix: Fix) -> None:
    args = {"group": "door-z", "name": "alice"}
    cli, python, http = (
        SpeakerDBError("problem", fix=fix, **args).fix_hint(spellings)
        for spellings in (CLI_FIXES, PYTHON_FIXES, HTTP_FIXES)
    )
    assert cli is not None and ("`speakerdb " in cli or "--" in cli), cli
    assert python is not None and names_no_command(python), python
    assert http is not None and http != cli
    assert client_may_read(http), http
    if fix in OPERATOR_FIXES:
        assert "operator" in http and "on the server" in http, http
    else:
        assert names_no_command(http.split(";")[0]), http  # the client's own fix first


def test_an_operator_fix_is_said_to_be_the_operators_over_http() -> None:
    old = SchemaError("s.db: schema 0009 is older than 0012; run `speakerdb db upgrade`")
    found = document(old)["error"]
    assert found["type"] == "SchemaError"
    assert found["message"].startswith("the server cannot answer this; its operator must")
    assert found["message"].endswith("run `speakerdb db upgrade`")
    assert found["fix"] == {"code": None, "args": {}, "by": "operator", "hint": None}
    # A busy database is the client's to retry: no operator, no fix member.
    busy = document(DatabaseBusy("s.db: busy for over 5 s; retry"))["error"]
    assert busy == {"type": "DatabaseBusy", "message": "s.db: busy for over 5 s; retry"}
    operators = {n for n in errors.__all__ if getattr(getattr(errors, n), "operator_fix", False)}
    assert operators == {"DatabaseError", "SchemaError", "ModelError", "ModelMismatch"}
    # An error without a fix keeps the document it had.
    plain = document(InputError("bad"))
    assert plain == {"error": {"type": "InputError", "message": "bad"}}


@pytest.mark.parametrize("fix", list(Fix), ids=lambda f: f.value)
def test_an_error_document_read_back_is_the_libraries_error_with_its_fix(fix: Fix) -> None:
    args = {"group": "door-z"} if fix is Fix.LIST_GROUPS else {"name": "alice"}
    raised = errors.EnrollmentRefused("problem", fix=fix, **args)
    sent = document(raised)
    found = errors.error_from_document(sent)
    assert type(found) is errors.EnrollmentRefused and found.fix is fix
    assert (found.problem, found.fix_args, found.fix.code) == ("problem", args, fix.value)
    assert str(found) == sent["error"]["message"] != str(raised)  # the service's spelling
    assert found.spelled(PYTHON_FIXES) == str(raised) and document(found) == sent


def test_an_error_document_from_another_version_is_read_as_far_as_it_can_be() -> None:
    newer = {"type": "Overloaded", "message": "m; wait", "fix": {"code": "wait", "hint": "wait"}}
    found = errors.error_from_document({"error": newer})
    assert type(found) is errors.ServiceError and found.fix is None and str(found) == "m; wait"
    older = {"type": "GroupNotFound", "message": "no group; hint", "fix": {"code": "list_groups"}}
    assert errors.error_from_document({"error": older}).fix is None  # no hint: in the message
    with pytest.raises(KeyError):
        errors.error_from_document({"detail": "Not Found"})


# -- the library and the CLI ----------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SpeakerDB]:
    """alice enrolled and bob opted out, opened with the speech gate on (which refuses
    a tone), as the CLI opens it."""
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [(voice(140, 1.5, 16000, 1), 16000)])
        db.enroll("bob", [(voice(220, 1.5, 16000, 3), 16000)])
        db.lifecycle.opt_out("bob")
    monkeypatch.setenv("SPEAKERDB_SPEECH_GATE", "on")
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        yield db


def _wav(folder: Path, name: str, samples: np.ndarray) -> str:
    path = folder / f"{name}.wav"
    sf.write(path, samples, 16000)
    return str(path)


TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 3) / 16000)).astype(np.float32)

# (fix, CLI arguments (CLIP: a clip of alice's voice, TONE: a steady tone), the library
# call that fails the same way, the CLI's spelling)
CLI_CASES: list[tuple[Fix, list[str], Callable[[SpeakerDB, str, str], object], str]] = [
    (
        Fix.LIST_SPEAKERS,
        ["show", "nobody"],
        lambda db, c, t: db.speaker("nobody"),
        "`speakerdb list` shows who is enrolled",
    ),
    (
        Fix.LIST_GROUPS,
        ["identify", "CLIP", "--group", "door-z"],
        lambda db, c, t: db.identify(c, group="door-z"),
        "`speakerdb group add door-z NAME...` makes it",
    ),
    (
        Fix.FORCE,
        ["enroll", "alice", "TONE"],
        lambda db, c, t: db.enroll("alice", [t]),
        "--force enrolls anyway",
    ),
    (
        Fix.THRESHOLD,
        ["identify", "CLIP", "--threshold", "4"],
        lambda db, c, t: db.identify(c, threshold=4),
        "give --threshold a number within the score's range",
    ),
    (
        Fix.CLEAR_OPT_OUT,
        ["enroll", "bob", "CLIP"],
        lambda db, c, t: db.enroll("bob", [c]),
        "clear it first (`speakerdb opt-out --clear bob`)",
    ),
]


@pytest.mark.parametrize(
    ("fix", "args", "call", "spelled"), CLI_CASES, ids=[case[0].value for case in CLI_CASES]
)
def test_the_cli_names_its_command_and_the_library_its_python(
    cli_db: SpeakerDB,
    tmp_path: Path,
    fix: Fix,
    args: list[str],
    call: Callable[[SpeakerDB, str, str], object],
    spelled: str,
) -> None:
    clip = _wav(tmp_path, "alice2", voice(140, 1.5, 16000, 2))
    tone = _wav(tmp_path, "tone", TONE)
    argv = [{"CLIP": clip, "TONE": tone}.get(a, a) for a in args]
    result = CliRunner().invoke(app, [*argv, "--db", str(cli_db.path)])
    assert result.exit_code == 2, result.output
    assert spelled in result.stderr and result.stderr.count("\n") == 1, result.stderr
    as_json = CliRunner().invoke(app, [*argv, "--db", str(cli_db.path), "--json"])
    error = json.loads(as_json.stdout)["error"]
    assert error["fix"]["code"] == fix.value and spelled in error["fix"]["hint"], error
    with pytest.raises(SpeakerDBError) as raised:
        call(cli_db, clip, tone)
    assert raised.value.fix is fix
    message = str(raised.value)
    assert message.endswith(raised.value.fix_hint(PYTHON_FIXES) or "?") and names_no_command(
        message
    ), message


def test_a_batch_refusal_on_the_cli_names_force(cli_db: SpeakerDB, tmp_path: Path) -> None:
    manifest = tmp_path / "batch.csv"
    manifest.write_text(f"speaker,path\ncarol,{_wav(tmp_path, 'tone', TONE)}\n")
    result = CliRunner().invoke(app, ["enroll-batch", str(manifest), "--db", str(cli_db.path)])
    assert "not speech" in result.output and "--force enrolls anyway" in result.output, result
    as_json = CliRunner().invoke(
        app, ["enroll-batch", str(manifest), "--db", str(cli_db.path), "--json"]
    )
    (shown,) = json.loads(as_json.stdout)["failures"]
    assert shown["reason"].endswith("--force enrolls anyway"), shown
    report = cli_db.enroll_batch(read_manifest(manifest))
    (failure,) = report.failures
    assert failure.reason.endswith("force=True enrolls anyway") and failure.error is not None
    assert "error" not in to_jsonable(report)["failures"][0]


@contextlib.contextmanager
def _write_locked(path: Path) -> Iterator[None]:
    """Another program holding the database's write lock: no decision can be recorded."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.parametrize("fix", [Fix.AUDIT_OFF, Fix.REPLAY_WINDOW_OFF], ids=lambda f: f.value)
def test_a_decision_that_cannot_be_recorded_names_the_guard_to_turn_off(
    cli_db: SpeakerDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fix: Fix
) -> None:
    """Auditing, or the replay window, failing closed: the CLI names its command, the
    library its call (it named the CLI's command in both)."""
    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 200)
    if fix is Fix.AUDIT_OFF:
        cli_db.audit.configure(True)
    else:
        monkeypatch.setenv("SPEAKERDB_REPLAY_WINDOW", "600")
        monkeypatch.setenv("SPEAKERDB_REPLAY_CHECK", "on")
    spelled = {
        Fix.AUDIT_OFF: ("`speakerdb audit off`", "db.audit.configure(False)"),
        Fix.REPLAY_WINDOW_OFF: ("`speakerdb replay-window 0`", "db.guards.set_replay_window(0)"),
    }[fix]
    clips = [_wav(tmp_path, f"alice{n}", recording(140, 2.0, seed=n)) for n in (5, 6)]
    with _write_locked(cli_db.path):
        argv = ["verify", "alice", clips[0], "--db", str(cli_db.path), "--json"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2 and spelled[0] in result.stderr, result.output
        assert json.loads(result.stdout)["error"]["fix"]["code"] == fix.code, result.stdout
        with SpeakerDB(cli_db.path, encoder=FakeEncoder()) as db:
            with pytest.raises(DatabaseBusy, match="not given") as caught:
                db.verify("alice", clips[1])
    hint = caught.value.fix_hint(PYTHON_FIXES) or "?"
    assert caught.value.fix is fix and str(caught.value).endswith(hint) and spelled[1] in hint
    assert names_no_command(str(caught.value)), caught.value


# -- the service ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, list[bytes]]
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with allison's and carlo's first clips enrolled, and oscar opted out;
    the same caps as test_server.py's, whose bad requests it answers too."""
    folder = tmp_path_factory.mktemp("fixes")
    keys = make_keys(folder / "speakers.db")
    server = Server(
        folder / "speakers.db", "--max-body-mb", "2", "--max-clip-s", "20", log=folder / "log"
    )
    server.start()
    for name, data in (("allison", clips["allison"][0]), ("carlo", clips["carlo"][0])):
        enrolled = _send(server, keys["admin"], "POST", f"/v1/speakers/{name}/enrollments", data)
        assert enrolled.status == 201, enrolled.body
    oscar = "/v1/speakers/oscar/enrollments?force=true"
    assert _send(server, keys["admin"], "POST", oscar, clips["carlo"][5]).status == 201
    with SpeakerDB(server.db_path) as db:
        db.lifecycle.opt_out("oscar")
    yield server, keys
    stop_quietly(server)
    assert "Traceback" not in server.log()


def _send(server: Server, key: str, method: str, path: str, body: bytes = b"") -> Reply:
    kind = "application/json" if method == "PATCH" else "audio/wav"
    return server.request(method, path, key=key, body=body, content_type=kind)


def _tone_wav() -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, TONE, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# (id, method, path, body: "allison" a clip of hers, "tone" a steady tone, or JSON,
#  status, type, fix code, whose fix, a fragment the HTTP spelling holds,
#  the request that applies the fix and its status)
HTTP_CASES = [
    ("show", "GET", "/v1/speakers/nobody", "", 404, "SpeakerNotFound", "list_speakers"),
    ("verify", "POST", "/v1/speakers/nobody/verify", "allison", 404, "SpeakerNotFound",
     "list_speakers"),
    ("remove", "DELETE", "/v1/speakers/nobody", "", 404, "SpeakerNotFound", "list_speakers"),
    ("rename", "PATCH", "/v1/speakers/nobody", '{"name": "x"}', 404, "SpeakerNotFound",
     "list_speakers"),
    ("identify-group", "POST", "/v1/identify?group=door-z", "allison", 404, "GroupNotFound",
     "list_groups"),
    ("verify-group", "POST", "/v1/speakers/allison/verify?group=door-z", "allison", 404,
     "GroupNotFound", "list_groups"),
    ("enroll-refused", "POST", "/v1/speakers/allison/enrollments", "tone", 422,
     "EnrollmentRefused", "force"),
    ("identify-threshold", "POST", "/v1/identify?threshold=7", "allison", 400, "InputError",
     "threshold"),
    ("verify-threshold", "POST", "/v1/speakers/allison/verify?threshold=nan", "allison", 400,
     "InputError", "threshold"),
    ("opted-out", "POST", "/v1/speakers/oscar/enrollments", "allison", 409, "OptedOut",
     "clear_opt_out"),
]  # fmt: skip
#: What each code's HTTP spelling names: the endpoint or field, or the operator.
NAMED = {
    "list_speakers": "GET /v1/speakers",
    "list_groups": "`group`",
    "force": "force=true (`POST /v1/speakers/allison/enrollments?force=true`)",
    "threshold": "`threshold`",
    "clear_opt_out": "the server's operator",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind", "code"),
    [case[1:] for case in HTTP_CASES],
    ids=[case[0] for case in HTTP_CASES],
)
def test_the_service_names_a_fix_a_client_can_apply(
    served: tuple[Server, dict[str, str]],
    clips: dict[str, list[bytes]],
    method: str,
    path: str,
    body: str,
    status: int,
    kind: str,
    code: str,
) -> None:
    server, keys = served
    data = {"allison": clips["allison"][3], "tone": _tone_wav()}.get(body, body.encode())
    reply = _send(server, keys["admin"], method, path, data)
    assert reply.status == status, reply.body
    no_traceback(reply)
    error = reply.json["error"]
    assert error["type"] == kind and error["fix"]["code"] == code, error
    hint, message = error["fix"]["hint"], error["message"]
    assert NAMED[code] in hint and message.endswith("; " + hint), error
    if code == Fix.CLEAR_OPT_OUT.value:
        assert error["fix"]["by"] == "operator" and "on the server" in hint
    else:
        assert error["fix"]["by"] == "client" and names_no_command(hint.split(";")[0]), hint
    assert client_may_read(message), message


@pytest.mark.slow
def test_no_error_over_http_names_a_cli_command_as_the_clients_fix(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    """Every bad request of test_server.py, and the key cases: an HTTP fix, or none,
    never a `speakerdb` command or a --flag unless it is said to be the operator's."""
    server, keys = served
    replies = [_send(server, keys["admin"], m, p, b) for m, p, b, *_ in bad_requests(clips)]
    replies += [
        server.request("GET", "/v1/speakers"),
        server.request("GET", "/v1/speakers", key="sdb_not-a-key"),
        server.request("DELETE", "/v1/speakers/allison", key=keys["query"]),
    ]
    for reply in replies:
        assert reply.status >= 400, reply.body
        message = reply.json["error"]["message"]
        assert client_may_read(message), message
    auth = [r.json["error"]["message"] for r in replies[-3:]]
    assert "Authorization: Bearer" in auth[0] and "needs an admin key" in auth[2], auth


@pytest.mark.slow
def test_a_stream_names_the_http_fix_too(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    server, keys = served
    audio, rate = pcm16(clips["allison"][4])
    hello = {"format": "s16le", "sample_rate": rate, "key": keys["query"]}
    frames, code = stream(server, "/v1/stream/verify/nobody", hello, audio)
    assert code == 4404, frames
    error = frames[-1]["error"]
    assert error["fix"]["code"] == "list_speakers" and "GET /v1/speakers" in error["message"]
    frames, code = stream(server, "/v1/stream/identify", {**hello, "group": "door-z"}, audio)
    assert code == 4404 and frames[-1]["error"]["fix"]["code"] == "list_groups", frames


def _texts(document: object) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from _texts(value)
    elif isinstance(document, list):
        for value in document:
            yield from _texts(value)


@pytest.mark.slow
def test_a_decisions_notices_say_which_fixes_are_the_operators(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    """Not errors, but read by the same clients: a decision's reason and its policy's
    notice name a `speakerdb` command only as the operator's."""
    server, keys = served
    with SpeakerDB(server.db_path) as db:
        db.lifecycle.groups.add("door-a", ["allison"])
    try:
        asked = {
            "/v1/speakers/carlo/verify?group=door-a": "not a member of group 'door-a'",
            "/v1/identify?threshold=0.5": "raw cosine decides",
            "/v1/identify?score_norm=asnorm": "needs a cohort",
        }
        for path, said in asked.items():
            reply = _send(server, keys["query"], "POST", path, clips["carlo"][4])
            assert reply.status == 200, reply.body
            texts = list(_texts(reply.json))
            assert any(said in text for text in texts), texts
            for text in texts:
                assert client_may_read(text), text
    finally:
        with SpeakerDB(server.db_path) as db:
            db.lifecycle.groups.delete("door-a")


@pytest.mark.slow
def test_the_openapi_description_has_the_error_document(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served
    spec = server.request("GET", "/openapi.json", key=keys["query"]).json
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorBody"]["properties"]) == {"type", "message", "fix"}
    assert set(schemas["ErrorFix"]["properties"]) == {"code", "args", "by", "hint"}
    for path in ("/v1/identify", "/v1/speakers/{name}/enrollments"):
        responses = spec["paths"][path]["post"]["responses"]
        for status in ("4XX", "5XX"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorDocument"}


@pytest.mark.slow
def test_the_python_client_raises_the_fix_the_service_sent(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    """The library's class, fix and arguments, as the library raises them in process;
    the message the service's, which names no command or call the client cannot make."""
    from speakerdb.client import Client

    server, keys = served
    admin = Client(f"http://127.0.0.1:{server.port}", keys["admin"])
    admin.enroll("dora", [clips["carlo"][1]], force=True)  # carlo's voice: forced
    try:
        body, kind = multipart([(None, _tone_wav())])  # as the client sends bytes
        path = "/v1/speakers/dora/enrollments"
        sent = server.request("POST", path, key=keys["admin"], body=body, content_type=kind)
        sent = sent.json["error"]
        with pytest.raises(errors.EnrollmentRefused) as refused:
            admin.enroll("dora", [_tone_wav()])
        exc = refused.value
        assert exc.fix is Fix.FORCE and exc.fix.code == "force" == sent["fix"]["code"]
        assert exc.fix_args == {"name": "dora"} == sent["fix"]["args"]
        assert str(exc) == sent["message"] == f"{exc.problem}; {sent['fix']['hint']}"
        assert exc.fix_hint(HTTP_FIXES) == sent["fix"]["hint"]
        assert names_no_command(str(exc)) and "force=True" not in str(exc), str(exc)
        # The fix, applied as the client spells it.
        assert admin.enroll("dora", [_tone_wav()], force=True)["speaker"]["n_utterances"] == 2
        with pytest.raises(errors.OptedOut) as opted_out:
            admin.enroll("oscar", [clips["carlo"][2]])
        exc = opted_out.value
        assert exc.fix is Fix.CLEAR_OPT_OUT and exc.fix_args == {"name": "oscar"}
        assert "the server's operator" in str(exc) and "db.lifecycle" not in str(exc)
        with pytest.raises(errors.SpeakerNotFound) as missing:
            admin.speaker("nobody")
        assert missing.value.fix is Fix.LIST_SPEAKERS and str(missing.value).endswith(
            "; GET /v1/speakers lists who is enrolled"
        )
    finally:
        admin.remove("dora")


@pytest.mark.slow
def test_the_fixes_the_service_names_work(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    server, keys = served
    clip = clips["allison"][4]
    listed = _send(server, keys["query"], "GET", "/v1/speakers")
    assert listed.status == 200 and "allison" in [s["name"] for s in listed.json]
    for path in ("/v1/identify", "/v1/speakers/allison/verify"):
        assert _send(server, keys["query"], "POST", path + "?threshold=0.5", clip).status == 200
        assert _send(server, keys["query"], "POST", path, clip).status == 200  # no group
    # Last: allison then has the tone among her clips.
    path = "/v1/speakers/allison/enrollments"
    assert _send(server, keys["admin"], "POST", path, _tone_wav()).status == 422
    assert _send(server, keys["admin"], "POST", path + "?force=true", _tone_wav()).status == 200


@pytest.mark.slow
def test_a_decision_the_server_cannot_audit_is_the_clients_to_retry(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    """The audit log held by another program past the server's wait (30 s): 503 with
    Retry-After, a retry first, and turning auditing off said to be the operator's."""
    server, keys = served
    with SpeakerDB(server.db_path) as db:
        db.audit.configure(True)
    try:
        with _write_locked(server.db_path):
            path = "/v1/speakers/allison/verify"
            reply = _send(server, keys["query"], "POST", path, clips["allison"][5])
    finally:
        with SpeakerDB(server.db_path) as db:
            db.audit.configure(False)
    assert reply.status == 503 and reply.headers["retry-after"] == "1", reply.body
    no_traceback(reply)
    error = reply.json["error"]
    assert error["type"] == "DatabaseBusy" and error["fix"]["code"] == "audit_off", error
    assert error["fix"]["by"] == "client" and error["fix"]["hint"].startswith("retry"), error
    assert "the server's operator may turn auditing off" in error["message"], error
    assert client_may_read(error["message"]), error["message"]


@pytest.mark.slow
def test_an_operators_fix_over_http_says_it_is_the_operators(
    served: tuple[Server, dict[str, str]],
) -> None:
    """A stored setting out of range (written behind the server's back): the client is
    told the server cannot answer and that its operator's command fixes it."""

    server, keys = served
    with sqlite3.connect(server.db_path) as con:
        con.execute("INSERT OR REPLACE INTO settings VALUES ('threshold', '5')")
    try:
        reply = _send(server, keys["query"], "GET", "/v1/info")
    finally:
        with sqlite3.connect(server.db_path) as con:
            con.execute("DELETE FROM settings WHERE key = 'threshold'")
    assert reply.status == 500, reply.body
    no_traceback(reply)
    error = reply.json["error"]
    assert error["type"] == "DatabaseError" and error["fix"]["by"] == "operator", error
    assert error["message"].startswith("the server cannot answer this; its operator must fix")
    assert "`speakerdb set-threshold" in error["message"]
    assert _send(server, keys["query"], "GET", "/v1/info").status == 200
