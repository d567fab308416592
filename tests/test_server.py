"""`speakerdb serve` as a client sees it: a real server process on a loopback port,
driven over HTTP and WebSocket, with GE2E (model `resemblyzer`) on real speech.

Every endpoint, the key cases, and the bad inputs of the CLI's list: each gets its
status and a one-line `{"error": {"type", "message"}}` without a traceback, and
leaves the database as it was.
"""

from __future__ import annotations

import http.client
import io
import json
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _serving import Reply, Server, make_keys, multipart, no_traceback, stop_quietly
from test_cli import BAD_CLIPS

from speakerdb import SpeakerDB
from speakerdb._names import MAX_NAME_LENGTH

pytest.importorskip("fastapi")
websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(corpus: Path) -> dict[str, list[bytes]]:
    """Real 3 s speech clips (WAV bytes) of two speakers, by speaker."""
    found = {}
    for speaker in ("asterisk-allison", "asterisk-carlo-it"):
        files = sorted((corpus / "concat3s" / speaker).glob("*.wav"))[:6]
        found[speaker.split("-")[1]] = [f.read_bytes() for f in files]
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("served")
    keys = make_keys(folder / "speakers.db")
    server = Server(
        folder / "speakers.db", "--max-body-mb", "2", "--max-clip-s", "20", log=folder / "log"
    )
    server.start()
    yield server, keys
    stop_quietly(server)
    assert "Traceback" not in server.log()


@pytest.fixture
def server(served: tuple[Server, dict[str, str]]) -> Server:
    return served[0]


@pytest.fixture
def keys(served: tuple[Server, dict[str, str]]) -> dict[str, str]:
    return served[1]


def wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def enroll(server: Server, key: str, name: str, data: list[bytes], query: str = "") -> Reply:
    body, kind = multipart([(f"clip{i}.wav", d) for i, d in enumerate(data)])
    path = f"/v1/speakers/{name}/enrollments{query}"
    return server.request("POST", path, key=key, body=body, content_type=kind)


def state(server: Server, key: str) -> object:
    """What a bad request must not change: the speakers and their clips."""
    speakers = server.request("GET", "/v1/speakers", key=key).json
    return [server.request("GET", f"/v1/speakers/{s['name']}", key=key).json for s in speakers]


def error(reply: Reply, status: int, kind: str, *fragments: str) -> None:
    assert reply.status == status, reply.body
    no_traceback(reply)
    document = reply.json
    assert list(document) == ["error"] and document["error"]["type"] == kind, document
    message = document["error"]["message"]
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# -- the endpoints -----------------------------------------------------------------


def test_every_endpoint(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    admin, query = keys["admin"], keys["query"]
    assert server.request("GET", "/healthz").json == {"status": "ok"}
    page = server.request("GET", "/")
    assert page.status == 200 and b"<title>speakerdb" in page.body
    assert server.request("GET", "/openapi.json").status == 401
    assert server.request("GET", "/docs").status == 404
    spec = server.request("GET", "/openapi.json", key=query).json
    assert {"/v1/identify", "/v1/speakers/{name}/verify", "/v1/speakers/{name}/enrollments"} <= set(
        spec["paths"]
    )

    created = enroll(server, admin, "allison", clips["allison"][:2])
    assert created.status == 201, created.body
    assert created.json["speaker"]["n_utterances"] == 2 and created.json["created"] is True
    assert created.json["notice"] is None
    assert [u["source"] for u in created.json["added"]] == ["clip0.wav", "clip1.wav"]
    raw = server.request(
        "POST",
        "/v1/speakers/carlo/enrollments",
        key=admin,
        body=clips["carlo"][0],
        content_type="audio/wav",
    )
    assert raw.status == 201 and raw.json["added"][0]["source"] is None
    assert raw.json["notice"].startswith("'carlo' is enrolled from one clip")
    more = enroll(server, admin, "carlo", clips["carlo"][1:2])
    assert more.status == 200 and more.json["speaker"]["n_utterances"] == 2
    assert more.json["notice"] is None

    listed = server.request("GET", "/v1/speakers", key=query).json
    assert [(s["name"], s["n_utterances"]) for s in listed] == [("allison", 2), ("carlo", 2)]
    shown = server.request("GET", "/v1/speakers/allison", key=query).json
    assert shown["speaker"]["name"] == "allison" and len(shown["utterances"]) == 2
    info = server.request("GET", "/v1/info", key=query).json
    assert (info["n_speakers"], info["n_utterances"], info["encoder"]["model"]) == (
        2,
        4,
        "resemblyzer",
    )
    # Where the server keeps its files is for the operator's (admin) keys only.
    assert "path" not in info and "index_path" not in info
    assert "speakers.db" not in json.dumps(info)
    admin_info = server.request("GET", "/v1/info", key=admin).json
    assert admin_info["path"].endswith(".db") and admin_info["n_speakers"] == 2

    same = server.request(
        "POST", "/v1/speakers/allison/verify", key=query, body=clips["allison"][3]
    )
    assert (
        same.status == 200 and same.json["accepted"] is True and same.json["speaker"] == "allison"
    )
    other = server.request("POST", "/v1/speakers/allison/verify", key=query, body=clips["carlo"][3])
    assert other.status == 200 and other.json["accepted"] is False
    strict = server.request(
        "POST",
        "/v1/speakers/allison/verify?threshold=0.999&score_norm=none",
        key=query,
        body=clips["allison"][3],
    )
    assert strict.json["accepted"] is False and strict.json["threshold"] == 0.999
    who = server.request("POST", "/v1/identify?top_k=1", key=query, body=clips["carlo"][4])
    assert who.status == 200 and isinstance(who.json, dict)
    assert who.json["speaker"] == "carlo" and len(who.json["matches"]) == 1

    renamed = server.request(
        "PATCH",
        "/v1/speakers/carlo",
        key=admin,
        body=b'{"name": "carlo.r"}',
        content_type="application/json",
    )
    assert renamed.status == 200 and renamed.json["name"] == "carlo.r"
    removed = server.request("DELETE", "/v1/speakers/carlo.r", key=admin)
    assert removed.status == 200 and removed.json["name"] == "carlo.r"
    gone = server.request("POST", "/v1/identify", key=query, body=clips["carlo"][4])
    assert "carlo.r" not in [m["speaker"] for m in gone.json["matches"]]

    metrics = server.request("GET", "/metrics", key=query)
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    assert 'speakerdb_requests_total{method="POST",route="/v1/identify",status="200"}' in text
    assert 'speakerdb_request_duration_seconds_bucket{route="/v1/identify",le="+Inf"}' in text
    assert 'speakerdb_decisions_total{operation="verify",outcome="accepted"}' in text
    assert 'speakerdb_decisions_total{operation="verify",outcome="rejected"}' in text


# -- keys ------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/info"),
    ("GET", "/v1/speakers"),
    ("GET", "/v1/speakers/allison"),
    ("DELETE", "/v1/speakers/allison"),
    ("PATCH", "/v1/speakers/allison"),
    ("POST", "/v1/speakers/allison/enrollments"),
    ("POST", "/v1/identify"),
    ("POST", "/v1/speakers/allison/verify"),
    ("GET", "/metrics"),
]
ADMIN_ONLY = PROTECTED[3:6]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_key_or_an_unknown_key_is_401(server: Server, method: str, path: str) -> None:
    error(server.request(method, path), 401, "Unauthorized", "Authorization: Bearer")
    error(server.request(method, path, key="sdb_not-a-key"), 401, "Unauthorized", "key list")
    error(server.request(method, path, headers={"Authorization": "Basic abc"}), 401, "Unauthorized")


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
def test_a_query_key_may_not_change_anything(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]], method: str, path: str
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])
    before = state(server, keys["query"])
    reply = server.request(
        method, path, key=keys["query"], body=b'{"name": "x"}', content_type="application/json"
    )
    error(reply, 403, "Forbidden", "needs an admin key")
    assert state(server, keys["query"]) == before


def test_a_revoked_key_is_refused_at_once(server: Server, keys: dict[str, str]) -> None:
    with SpeakerDB(server.db_path) as db:
        _, secret = db.keys.create("temporary", "query")
    assert server.request("GET", "/v1/speakers", key=secret).status == 200
    with SpeakerDB(server.db_path) as db:
        db.keys.revoke("temporary")
    error(server.request("GET", "/v1/speakers", key=secret), 401, "Unauthorized")


def test_decisions_are_audited_with_the_key_that_asked(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])
    with SpeakerDB(server.db_path) as db:
        db.audit.configure(True)
    try:
        server.request(
            "POST", "/v1/speakers/allison/verify", key=keys["query"], body=clips["allison"][5]
        )
        with SpeakerDB(server.db_path) as db:
            newest = db.audit.entries(1)[0]
    finally:
        with SpeakerDB(server.db_path) as db:
            db.audit.configure(False)
    assert (newest.operation, newest.claimed, newest.api_key) == ("verify", "allison", "query-key")


# -- bad input: the status, one line, no traceback, nothing changed ---------------------

SILENCE = np.zeros(16000 * 2, dtype=np.float32)
TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 3) / 16000)).astype(np.float32)


def bad_requests(clips: dict[str, list[bytes]]) -> list[tuple[str, str, bytes, int, str, str]]:
    """(method, path, body, status, error type, message fragment)."""
    allison = clips["allison"][0]
    return [
        (
            "POST",
            "/v1/identify",
            b"these are meeting notes, not audio" * 20,
            400,
            "AudioError",
            "not a readable audio",
        ),
        ("POST", "/v1/identify", b"", 400, "AudioError", ""),
        ("POST", "/v1/identify", allison[:40], 400, "AudioError", ""),
        ("POST", "/v1/identify", wav(SILENCE), 400, "AudioError", "silent"),
        ("POST", "/v1/identify", wav(SILENCE[:4000]), 400, "AudioError", "at least"),
        ("POST", "/v1/identify?threshold=7", allison, 400, "InputError", "threshold"),
        ("POST", "/v1/identify?score_norm=magic", allison, 400, "InputError", "magic"),
        ("POST", "/v1/identify?top_k=0", allison, 422, "InputError", "top_k"),
        ("POST", "/v1/identify?top_k=many", allison, 422, "InputError", "top_k"),
        ("POST", "/v1/speakers/nobody/verify", allison, 404, "SpeakerNotFound", "nobody"),
        (
            "POST",
            "/v1/speakers/alison/verify",
            allison,
            404,
            "SpeakerNotFound",
            "did you mean 'allison'",
        ),
        ("GET", "/v1/speakers/nobody", b"", 404, "SpeakerNotFound", "nobody"),
        ("DELETE", "/v1/speakers/nobody", b"", 404, "SpeakerNotFound", "nobody"),
        ("PATCH", "/v1/speakers/nobody", b'{"name": "x"}', 404, "SpeakerNotFound", "nobody"),
        ("PATCH", "/v1/speakers/allison", b'{"name": "carlo"}', 409, "DuplicateSpeaker", "carlo"),
        ("PATCH", "/v1/speakers/allison", b'{"name": ""}', 400, "InvalidName", ""),
        ("PATCH", "/v1/speakers/allison", b'{"nom": "x"}', 422, "InputError", "name"),
        ("PATCH", "/v1/speakers/allison", b"{not json", 422, "InputError", ""),
        ("POST", "/v1/speakers/carlo/enrollments", allison, 409, "DuplicateUtterance", "allison"),
        ("POST", "/v1/speakers/allison/enrollments", wav(TONE), 422, "EnrollmentRefused", ""),
        ("POST", "/v1/speakers/bad%0Aname/enrollments", clips["carlo"][5], 400, "InvalidName", ""),
        ("POST", "/v1/identify", wav(np.tile(TONE, 8)), 413, "TooLarge", "20 s"),
        ("POST", "/v1/identify", b"\0" * (3 * 2**20), 413, "TooLarge", "2 MiB"),
        ("GET", "/v1/nothing-here", b"", 404, "InputError", "no such endpoint"),
        ("PUT", "/v1/speakers/allison", b"", 405, "InputError", "not allowed"),
    ]


def test_bad_input_gets_its_status_and_changes_nothing(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    admin = keys["admin"]
    enroll(server, admin, "allison", clips["allison"][:1])
    enroll(server, admin, "carlo", clips["carlo"][:1])
    before = state(server, admin)
    for method, path, body, status, kind, fragment in bad_requests(clips):
        content_type = "application/json" if method == "PATCH" else "audio/wav"
        reply = server.request(method, path, key=admin, body=body, content_type=content_type)
        error(reply, status, kind, fragment)
        assert state(server, admin) == before, (method, path)


# The CLI's bad clips (test_cli.py), but for the two that only a file path can be.
HTTP_BAD_CLIPS = [make for make in BAD_CLIPS if make.__name__ not in ("_missing", "_directory")]
CLIP_REQUESTS = {
    "enroll-new": "/v1/speakers/carol/enrollments",
    "enroll-existing": "/v1/speakers/allison/enrollments",
    "identify": "/v1/identify",
    "verify": "/v1/speakers/allison/verify",
}


@pytest.mark.parametrize("make_bad", HTTP_BAD_CLIPS, ids=lambda f: f.__name__.strip("_"))
def test_the_clis_bad_clips_are_400_and_change_nothing(
    server: Server,
    keys: dict[str, str],
    clips: dict[str, list[bytes]],
    tmp_path: Path,
    make_bad: Callable[[Path], tuple[Path, str]],
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])
    bad, reason = make_bad(tmp_path)
    before = state(server, keys["admin"])
    for path in CLIP_REQUESTS.values():
        reply = server.request("POST", path, key=keys["admin"], body=bad.read_bytes())
        # A raw body has no file name: the message calls it the request body.
        error(reply, 400, "AudioError", reason.replace(bad.name, "the request body"))
        assert state(server, keys["admin"]) == before, path
    body, kind = multipart([(bad.name, bad.read_bytes())])
    reply = server.request(
        "POST", CLIP_REQUESTS["enroll-new"], key=keys["admin"], body=body, content_type=kind
    )
    error(reply, 400, "AudioError", reason, bad.name)
    assert state(server, keys["admin"]) == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("%20%09%20", "empty"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("eve%1B%5B2J", "control characters"),
        ("eve%0Amallory", "control characters"),
        ("al%E2%80%8Bice", "control characters"),
    ],
    ids=["whitespace", "too-long", "escape-sequence", "newline", "zero-width-space"],
)
def test_the_clis_bad_names_are_400_and_change_nothing(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]], name: str, fragment: str
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])
    before = state(server, keys["admin"])
    reply = enroll(server, keys["admin"], name, clips["carlo"][5:6])
    error(reply, 400, "InvalidName", fragment)
    body = json.dumps({"name": urllib.parse.unquote(name)}).encode()
    reply = server.request(
        "PATCH",
        "/v1/speakers/allison",
        key=keys["admin"],
        body=body,
        content_type="application/json",
    )
    error(reply, 400, "InvalidName", fragment)
    assert "\x1b" not in reply.body.decode()
    assert state(server, keys["admin"]) == before


def test_a_multipart_enrollment_needs_a_clips_field(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    body, kind = multipart([("a.wav", clips["allison"][4])], field="audio")
    reply = server.request(
        "POST", "/v1/speakers/newone/enrollments", key=keys["admin"], body=body, content_type=kind
    )
    error(reply, 400, "InputError", "'clips'")
    assert "newone" not in [
        s["name"] for s in server.request("GET", "/v1/speakers", key=keys["admin"]).json
    ]


# -- retries ----------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_gets_the_first_decision(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])

    def decisions() -> int:
        text = server.request("GET", "/metrics", key=keys["query"]).body.decode()
        lines = [line for line in text.splitlines() if line.startswith("speakerdb_decisions_total")]
        return sum(int(line.rsplit(" ", 1)[1]) for line in lines)

    before = decisions()
    ask = {"headers": {"Idempotency-Key": "door-7-attempt-1"}, "key": keys["query"]}
    first = server.request("POST", "/v1/speakers/allison/verify", body=clips["allison"][2], **ask)  # type: ignore[arg-type]
    again = server.request("POST", "/v1/speakers/allison/verify", body=clips["allison"][2], **ask)  # type: ignore[arg-type]
    assert first.status == again.status == 200 and first.body == again.body
    assert decisions() == before + 1
    other = server.request("POST", "/v1/speakers/allison/verify", body=clips["carlo"][2], **ask)  # type: ignore[arg-type]
    error(other, 400, "InputError", "Idempotency-Key")


# -- streams ----------------------------------------------------------------------------


def pcm16(data: bytes) -> tuple[bytes, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    return samples.tobytes(), rate


def stream(
    server: Server, path: str, hello: dict[str, object], audio: bytes, pace: float = 0.0
) -> tuple[list[dict], int | None]:
    frames = []
    with websockets_sync.connect(server.ws_url + path, open_timeout=30) as ws:
        ws.send(json.dumps(hello))
        step = 3200
        try:
            for i in range(0, len(audio), step):
                ws.send(audio[i : i + step])
                time.sleep(pace)
            ws.send(json.dumps({"type": "end"}))
        except Exception:  # closed by the server: its frames and code say why
            pass
        try:
            for message in ws:
                frames.append(json.loads(message))
        except Exception:
            pass
        code = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None
    return frames, code


def test_streams_decide_as_audio_arrives(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:2])
    enroll(server, keys["admin"], "carlo", clips["carlo"][:1])  # a cohort, as in use
    audio, rate = pcm16(clips["allison"][5])
    hello = {"format": "s16le", "sample_rate": rate, "key": keys["query"]}
    # Real time: 0.1 s of audio every 0.1 s (3200 bytes of s16le at 16 kHz).
    frames, code = stream(server, "/v1/stream/verify/allison", hello, audio, pace=0.1)
    assert code == 1000 and frames, frames
    assert frames[0]["outcome"] == "not_enough_speech" and frames[0]["final"] is False
    assert 2 <= len(frames) <= 6  # at most one a second, and a final one
    final = frames[-1]
    assert final["final"] is True and final["outcome"] == "accepted" and final["accepted"] is True
    assert final["threshold"] is not None and final["score"] >= final["threshold"]
    assert final["result"]["speaker"] == "allison"

    floats = np.frombuffer(audio, "<i2").astype("<f4") / 32768
    hello = {"format": "f32le", "sample_rate": rate, "key": keys["query"]}
    frames, code = stream(server, "/v1/stream/identify", hello, floats.tobytes())
    assert code == 1000 and frames[-1]["final"] and frames[-1]["speaker"] == "allison"


def test_segments_stream_says_who_spoke_when_as_audio_arrives(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:2])
    # carlo speaks as a stranger here: not enrolled, whatever the tests before did.
    server.request("DELETE", "/v1/speakers/carlo", key=keys["admin"])
    pause = np.zeros(16000, "<i2").tobytes()
    turns = [("allison", 3), ("carlo", 3), ("allison", 4), ("carlo", 4), ("allison", 5)]
    audio = pause + b"".join(pcm16(clips[who][i])[0] + pause for who, i in turns)
    hello = {"format": "s16le", "sample_rate": 16000, "key": keys["query"]}
    frames, code = stream(server, "/v1/stream/segments", hello, audio)
    assert code == 1000, frames
    assert frames[-1]["type"] == "end" and frames[-1]["seconds"] > 15
    segments = [f for f in frames[:-1] if f["type"] == "segment"]
    assert len(segments) == len(frames) - 1
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    spoken = [s["label"] for s in segments if s["end"] - s["start"] > 1.0]
    assert [k for i, k in enumerate(spoken) if i == 0 or spoken[i - 1] != k] == [
        "allison",
        "unknown-1",
        "allison",
        "unknown-1",
        "allison",
    ]
    assert {s["speaker"] for s in segments} <= {"allison", None}


def test_streams_refuse_bad_keys_frames_and_names(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]]
) -> None:
    enroll(server, keys["admin"], "allison", clips["allison"][:1])
    audio, rate = pcm16(clips["allison"][4])
    hello = {"format": "s16le", "sample_rate": rate}
    assert stream(server, "/v1/stream/identify", hello, audio)[1] == 4401
    assert stream(server, "/v1/stream/identify", {**hello, "key": "sdb_wrong"}, audio)[1] == 4401
    with_key = {**hello, "key": keys["query"]}
    frames, code = stream(server, "/v1/stream/verify/nobody", with_key, audio)
    assert code == 4404 and frames[-1]["error"]["type"] == "SpeakerNotFound"
    frames, code = stream(server, "/v1/stream/identify", {**with_key, "format": "mp3"}, audio)
    assert code == 4400 and "format" in frames[-1]["error"]["message"]
    frames, code = stream(server, "/v1/stream/identify", {**with_key, "sample_rate": 5}, audio)
    assert code == 4400
    frames, code = stream(server, "/v1/stream/identify", with_key, audio[:-1])
    assert code == 4400 and "whole 2-byte samples" in frames[-1]["error"]["message"]
    long = np.zeros(16000 * 61, "<i2").tobytes()
    frames, code = stream(server, "/v1/stream/identify", {**with_key, "sample_rate": 16000}, long)
    assert code == 4413 and frames[-1]["error"]["type"] == "TooLarge"


# -- start-up and faults ------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    import subprocess
    import sys

    with SpeakerDB(tmp_path / "open.db") as db:
        db.audit.configure(False)  # a database, without keys
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "speakerdb",
            "serve",
            "--db",
            str(tmp_path / "open.db"),
            "--host",
            "0.0.0.0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "not loopback" in proc.stderr and "key create" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SPEAKERDB_THRESHOLD", "abc"),
        ("SPEAKERDB_REPLAY_WINDOW", "soon"),
        ("SPEAKERDB_COUNTERMEASURE", "nosuch"),
    ],
)
def test_serve_refuses_a_bad_setting_before_listening(
    tmp_path: Path, variable: str, value: str
) -> None:
    # Started anyway, the server failed every decision with a 400 telling the client to
    # fix a variable only its operator can set.
    import os
    import subprocess
    import sys

    make_keys(tmp_path / "speakers.db")
    proc = subprocess.run(
        [sys.executable, "-m", "speakerdb", "serve", "--db", str(tmp_path / "speakers.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, variable: value},
    )
    assert proc.returncode == 2, proc.stderr
    assert variable in proc.stderr and "Traceback" not in proc.stderr
    assert "Uvicorn running" not in proc.stderr


def test_serve_on_a_port_in_use_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    # Left to uvicorn, the port was found taken after the model loaded, and the process
    # exited 3 (the CLI's "not enough speech") with uvicorn's log lines.
    import socket
    import subprocess
    import sys

    make_keys(tmp_path / "speakers.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["serve", "--db", str(tmp_path / "speakers.db"), "--port", str(port)]
        proc = subprocess.run(
            [sys.executable, "-m", "speakerdb", *command],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"speakerdb: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "another program listens there: choose another --port, or stop it\n"
    )


def test_sigterm_finishes_the_requests_in_flight(
    tmp_path: Path, clips: dict[str, list[bytes]]
) -> None:
    keys = make_keys(tmp_path / "speakers.db")
    server = Server(tmp_path / "speakers.db", log=tmp_path / "log").start()
    try:
        # serve binds the socket itself (a port in use is its error); uvicorn then leaves
        # saying where it listens to serve.
        assert f"Uvicorn running on http://127.0.0.1:{server.port} " in server.log()
        enroll(server, keys["admin"], "allison", clips["allison"][:1])
        body = clips["allison"][3]
        # A request in flight: its headers and half its body are sent when SIGTERM comes.
        connection = server.connection()
        connection.putrequest("POST", "/v1/speakers/allison/verify")
        connection.putheader("Authorization", f"Bearer {keys['query']}")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body[: len(body) // 2])
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        time.sleep(1.0)
        assert server.proc.poll() is None  # type: ignore[union-attr]
        connection.send(body[len(body) // 2 :])
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["speaker"] == "allison"  # a decision, answered
        # uvicorn re-raises the signal once done, as a process stopped by SIGTERM should.
        assert server.stop(timeout=60) in (0, -signal.SIGTERM)
        with pytest.raises(OSError):
            server.request("GET", "/healthz")
    finally:
        stop_quietly(server)


def test_sigkill_during_enrollments_loses_nothing_committed(tmp_path: Path) -> None:
    """The crash harness's planned speakers, enrolled over HTTP by 4 clients while the
    server is SIGKILLed and restarted: every enrollment answered 2xx is there afterwards,
    with its clips, and is identified from them."""
    from _workers import RATE, planned_clips, planned_name

    keys = make_keys(tmp_path / "speakers.db")
    server = Server(tmp_path / "speakers.db", log=tmp_path / "log")
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    numbers = iter(range(10_000))

    def client() -> None:
        while True:
            with lock:
                number = next(numbers)
            name = planned_name(number)
            data = [wav(c, RATE) for c in planned_clips(number)]
            try:
                # Forced: the synthetic voices are not speech to the quality gates.
                reply = enroll(server, keys["admin"], name, data, "?force=true")
            except (OSError, http.client.HTTPException):
                return  # the server was killed
            if reply.status in (200, 201):
                with lock:
                    acknowledged[name] = reply.json["speaker"]["n_utterances"]

    rng = np.random.default_rng(20261206)
    for _ in range(3):
        server.start()
        workers = [threading.Thread(target=client) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(float(rng.uniform(1.5, 4.0)))
        server.stop(signal.SIGKILL)
        for worker in workers:
            worker.join(60)
    assert len(acknowledged) >= 3, server.log()
    server.start()
    try:
        listed = {
            s["name"]: s["n_utterances"]
            for s in server.request("GET", "/v1/speakers", key=keys["query"]).json
        }
        for name, n_clips in acknowledged.items():
            assert listed.get(name) == n_clips, name
        number = next(n for n in range(10_000) if planned_name(n) in acknowledged)
        found = server.request(
            "POST", "/v1/identify", key=keys["query"], body=wav(planned_clips(number)[0], RATE)
        )
        assert found.json["best"]["speaker"] == planned_name(number)
    finally:
        stop_quietly(server)


# -- the Python client -------------------------------------------------------------------


def test_the_client_has_speakerdbs_method_names_and_errors(
    server: Server, keys: dict[str, str], clips: dict[str, list[bytes]], tmp_path: Path
) -> None:
    from speakerdb import Forbidden, SpeakerNotFound, Unauthorized
    from speakerdb.client import Client

    admin = Client(f"http://127.0.0.1:{server.port}", keys["admin"])
    query = Client(f"http://127.0.0.1:{server.port}", keys["query"])
    path = tmp_path / "june.wav"
    path.write_bytes(clips["carlo"][2])
    enrolled = admin.enroll("client-made", [path, clips["carlo"][3]], force=True)
    assert enrolled["speaker"]["n_utterances"] == 2 and enrolled["added"][0]["source"] == "june.wav"
    assert enrolled["added"][1]["source"] is None  # bytes have no name, as in process
    assert "client-made" in [s["name"] for s in query.speakers()]
    assert query.speaker("client-made")["n_utterances"] == 2
    assert len(query.utterances("client-made")) == 2
    assert query.verify("client-made", clips["carlo"][4])["speaker"] == "client-made"
    assert query.identify(io.BytesIO(clips["carlo"][4]), top_k=2)["matches"]
    assert query.info()["n_speakers"] >= 1
    with pytest.raises(Forbidden):
        query.remove("client-made")
    assert admin.rename("client-made", "client-renamed")["name"] == "client-renamed"
    assert admin.remove("client-renamed")["name"] == "client-renamed"
    with pytest.raises(SpeakerNotFound, match="client-renamed"):
        query.verify("client-renamed", clips["carlo"][4])
    with pytest.raises(Unauthorized):
        Client(f"http://127.0.0.1:{server.port}", "sdb_wrong").speakers()


def test_tls_with_the_ssl_options(tmp_path: Path) -> None:
    """--ssl-certfile and --ssl-keyfile: the service answers HTTPS (a self-signed
    certificate made here with openssl) and the stream WSS."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, private = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(private),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    keys = make_keys(tmp_path / "speakers.db")
    server = Server(
        tmp_path / "speakers.db",
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(private),
        log=tmp_path / "log",
    )
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    server.connection = lambda timeout=120.0: http.client.HTTPSConnection(  # type: ignore[method-assign]
        "127.0.0.1", server.port, timeout=timeout, context=context
    )
    try:
        server.start()
        assert server.request("GET", "/v1/speakers", key=keys["query"]).json == []
        url = f"wss://127.0.0.1:{server.port}/v1/stream/identify"
        with websockets_sync.connect(url, ssl=context, open_timeout=30) as ws:
            ws.send(json.dumps({"format": "s16le", "sample_rate": 16000, "key": keys["query"]}))
            ws.send(json.dumps({"type": "end"}))
            assert json.loads(ws.recv(timeout=60))["final"] is True
        with pytest.raises((ssl.SSLError, http.client.HTTPException, OSError)):
            plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            plain.request("GET", "/healthz")
            assert plain.getresponse().status != 200
    finally:
        stop_quietly(server)


def test_a_streams_own_windows_are_not_replays_but_a_replayed_recording_is(
    tmp_path: Path, clips: dict[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's switches turn the replay check off (synthetic voices); real speech here.
    monkeypatch.setenv("SPEAKERDB_REPLAY_CHECK", "on")
    monkeypatch.setenv("SPEAKERDB_REPLAY_WINDOW", "600")
    keys = make_keys(tmp_path / "speakers.db")
    server = Server(tmp_path / "speakers.db", log=tmp_path / "log").start()
    try:
        enroll(server, keys["admin"], "allison", clips["allison"][:2])
        enroll(server, keys["admin"], "carlo", clips["carlo"][:1])
        live = clips["allison"][5]
        audio, rate = pcm16(live)
        hello = {"format": "s16le", "sample_rate": rate, "key": keys["query"]}
        frames, code = stream(server, "/v1/stream/verify/allison", hello, audio, pace=0.1)
        assert code == 1000 and len(frames) >= 2, frames
        # Each decision covers all the audio so far, overlapping the last: not replays.
        assert all(frame["outcome"] != "replay" for frame in frames), frames
        assert frames[-1]["outcome"] == "accepted"

        def verify(body: bytes) -> dict:
            reply = server.request(
                "POST", "/v1/speakers/allison/verify", key=keys["query"], body=body
            )
            assert reply.status == 200, reply.body
            return reply.json

        # The stream's recording sent again, and an enrolled recording played back.
        for replayed in (live, clips["allison"][0]):
            answer = verify(replayed)
            assert answer["outcome"] == "replay" and answer["accepted"] is False, answer
        assert verify(clips["allison"][4])["outcome"] == "accepted"  # a new recording
    finally:
        stop_quietly(server)
    assert "Traceback" not in server.log()
