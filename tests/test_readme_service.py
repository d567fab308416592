"""The README's HTTP service examples, run as written against a real `speakerdb serve`
on a loopback port: its curl block (with curl itself) and its WebSocket stream in
Python (a decision, and the server's refusal), on real speech with GE2E. Only the
address and the key are the test's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _serving import Server, make_keys, multipart, stop_quietly
from conftest import ROOT, read_rows, voice

pytest.importorskip("fastapi")
pytest.importorskip("websockets.sync.client")
pytestmark = pytest.mark.slow

README_URL = "http://127.0.0.1:8000"


def service_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## HTTP service\n", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", service_section(), re.S)


@pytest.fixture
def served(corpus: Path, tmp_path: Path) -> Iterator[tuple[Server, str, Path]]:
    """A server with bob enrolled, an admin key, and the clips the examples name."""
    enroll = read_rows(corpus / "protocol" / "enroll.csv")
    test = read_rows(corpus / "protocol" / "test_concat3s.csv")

    def clips(speaker: str, rows: list[dict[str, str]]) -> list[str]:
        return [r["path"] for r in rows if r["speaker_id"] == speaker]

    for i, path in enumerate(clips("asterisk-allison", enroll)[:2], 1):
        shutil.copy(path, tmp_path / f"alice{i}.wav")
    later = clips("asterisk-allison", test)
    shutil.copy(later[0], tmp_path / "door.wav")
    samples, rate = sf.read(later[1], dtype="float32")
    sf.write(tmp_path / "visitor.flac", samples, rate)
    keys = make_keys(tmp_path / "door.db")
    server = Server(tmp_path / "door.db", log=tmp_path / "log").start()
    bob = [(Path(p).name, Path(p).read_bytes()) for p in clips("asterisk-carlo-it", enroll)]
    body, kind = multipart(bob)
    reply = server.request(
        "POST", "/v1/speakers/bob/enrollments", key=keys["admin"], body=body, content_type=kind
    )
    assert reply.status == 201, reply.body
    yield server, keys["admin"], tmp_path
    stop_quietly(server)
    assert "Traceback" not in server.log()


def test_the_curl_examples_run_as_written(served: tuple[Server, str, Path]) -> None:
    server, key, folder = served
    script = blocks("sh")[0].replace(README_URL, f"http://127.0.0.1:{server.port}")
    script = re.sub(r"^KEY=.*$", "", script, flags=re.M)  # the key is the test's
    # Each answer on a line of its own, and an HTTP error fails the script.
    script = script.replace("curl ", "curl -sS --fail-with-body -w '\\n' ")
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "KEY": key},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    enrolled, verified, identified, listed, renamed, removed = map(
        json.loads, done.stdout.splitlines()
    )
    assert enrolled["created"] and len(enrolled["added"]) == 2
    assert verified["outcome"] in ("accepted", "rejected") and verified["speaker"] == "alice"
    assert identified["outcome"] in ("accepted", "unknown") and len(identified["matches"]) <= 3
    assert [s["name"] for s in listed] == ["alice", "bob"]
    assert renamed["name"] == "alice.smith" and removed["name"] == "bob"


def websocket_example() -> str:
    (code,) = [b for b in blocks("python") if "websockets" in b]
    return code


def test_the_websocket_example_runs_as_written(
    served: tuple[Server, str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, key, folder = served
    body, kind = multipart(
        [(f"alice{i}.wav", (folder / f"alice{i}.wav").read_bytes()) for i in (1, 2)]
    )
    reply = server.request(
        "POST", "/v1/speakers/alice/enrollments", key=key, body=body, content_type=kind
    )
    assert reply.status == 201, reply.body
    code = websocket_example().replace("ws://127.0.0.1:8000", server.ws_url)
    monkeypatch.chdir(folder)
    exec(compile(code, "README.md (stream)", "exec"), {"KEY": key})  # as a user pastes it
    *progress, final = capsys.readouterr().out.splitlines()
    assert progress, "no decision before the end"
    outcome, accepted = final.split()
    assert outcome in ("accepted", "rejected") and accepted == str(outcome == "accepted")


def test_the_websocket_example_stops_with_the_servers_error(
    served: tuple[Server, str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stream the server refuses (alice is not enrolled; a key it does not know) stops
    the example with the error frame's type and message, which names the fix. The
    recording is a minute long, so the refusal reaches the example while it is still
    sending audio, as it would reach a microphone's stream."""
    server, key, folder = served
    samples, rate = sf.read(folder / "door.wav", dtype="int16")
    minute = np.tile(samples, 60 * rate // len(samples) + 1)
    sf.write(folder / "door.wav", minute, rate, subtype="PCM_16")
    code = websocket_example().replace("ws://127.0.0.1:8000", server.ws_url)
    monkeypatch.chdir(folder)
    refusals = {
        key: "SpeakerNotFound: no speaker named 'alice'; GET /v1/speakers lists who is enrolled",
        "sdb_mistyped": "Unauthorized: the key is not one of this database's",
    }
    for sent, expected in refusals.items():
        with pytest.raises(SystemExit) as stopped:
            exec(compile(code, "README.md (stream)", "exec"), {"KEY": sent})
        assert str(stopped.value).startswith(expected)
    assert capsys.readouterr().out == ""  # no decision was printed


def test_the_websocket_example_gives_up_on_a_server_that_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its every wait for an answer is bounded: against a server that takes the frames
    (and answers pings) but never decides, it raises TimeoutError instead of hanging."""
    from websockets.sync.server import ServerConnection, serve

    def silent(ws: ServerConnection) -> None:
        for _ in ws:  # every frame read, none answered
            pass

    code = websocket_example()
    # The README's wait, shortened so the test does not sit through it.
    code, waits = re.subn(r"\.recv\(timeout=\d+\)", ".recv(timeout=1)", code)
    assert waits == 1 and ".recv()" not in code, "every recv in the example has a timeout"
    sf.write(tmp_path / "door.wav", voice(140, 1.0), 16_000, subtype="PCM_16")
    monkeypatch.chdir(tmp_path)
    with serve(silent, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        code = code.replace("ws://127.0.0.1:8000", f"ws://127.0.0.1:{port}")
        with pytest.raises(TimeoutError):
            exec(compile(code, "README.md (stream)", "exec"), {"KEY": "k"})
        server.shutdown()
