"""Groups through `speakerdb serve` (issue 15): a real server process on a loopback port
with GE2E on real speech. Queries take ``group=``; a key bound to a group
(``speakerdb key create NAME --scope query --group G``) confines every query to it,
so a door cannot leave its group out, and is refused another group (403)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _serving import Server, make_keys, stop_quietly
from test_server import clips, enroll, error, pcm16, stream

from speakerdb import SpeakerDB

pytest.importorskip("fastapi")
pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.slow
__all__ = ["clips"]  # the real clips' fixture


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, list[bytes]]
) -> Iterator[tuple[Server, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("served-groups")
    path = folder / "speakers.db"
    keys = make_keys(path)
    server = Server(path, log=folder / "log")
    server.start()
    try:
        for name, data in (("allison", clips["allison"][:2]), ("carlo", clips["carlo"][:2])):
            assert enroll(server, keys["admin"], name, data).status == 201
        # Another process changes the groups while the server runs: it sees them.
        with SpeakerDB(path) as db:
            db.lifecycle.groups.add("door-a", ["allison"])
            db.lifecycle.groups.add("lab", ["carlo"])
            keys["door"] = db.keys.create("door", "query", group="door-a")[1]
        yield server, keys
    finally:
        stop_quietly(server)
    assert "Traceback" not in server.log()


def identify(server: Server, key: str, data: bytes, query: str = "") -> object:
    return server.request(
        "POST", f"/v1/identify{query}", key=key, body=data, content_type="audio/wav"
    )


def test_queries_take_a_group(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    server, keys = served
    carlo = clips["carlo"][5]
    assert identify(server, keys["query"], carlo).json["speaker"] == "carlo"
    door = identify(server, keys["query"], carlo, "?group=door-a").json
    assert door["speaker"] is None and door["group"] == "door-a"
    assert {m["speaker"] for m in door["matches"]} == {"allison"}
    verified = server.request(
        "POST",
        "/v1/speakers/carlo/verify?group=door-a",
        key=keys["query"],
        body=carlo,
        content_type="audio/wav",
    )
    assert verified.status == 200
    assert verified.json["outcome"] == "rejected" and "door-a" in verified.json["reason"]
    error(identify(server, keys["query"], carlo, "?group=nope"), 404, "GroupNotFound", "group list")


def test_a_key_bound_to_a_group_cannot_leave_it(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    server, keys = served
    door = keys["door"]
    allison, carlo = clips["allison"][5], clips["carlo"][5]
    found = identify(server, door, carlo).json  # no group named: the key's
    assert found["group"] == "door-a" and found["speaker"] is None
    assert identify(server, door, allison).json["speaker"] == "allison"
    assert identify(server, door, allison, "?group=door-a").status == 200
    error(identify(server, door, allison, "?group=lab"), 403, "Forbidden", "bound to group")
    verified = server.request(
        "POST", "/v1/speakers/carlo/verify", key=door, body=carlo, content_type="audio/wav"
    )
    assert verified.json["outcome"] == "rejected" and verified.json["group"] == "door-a"
    listed = server.request("GET", "/v1/speakers", key=door).json
    assert [s["name"] for s in listed] == ["allison"]
    error(server.request("GET", "/v1/speakers/carlo", key=door), 403, "Forbidden")


def test_a_bound_key_s_streams_are_confined_too(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    server, keys = served
    audio, rate = pcm16(clips["carlo"][5])
    hello = {"format": "s16le", "sample_rate": rate, "key": keys["door"]}
    frames, code = stream(server, "/v1/stream/identify", hello, audio)
    assert code == 1000, frames
    final = frames[-1]
    assert final["final"] is True and final["result"]["group"] == "door-a"
    assert final["result"]["speaker"] is None
    frames, code = stream(server, "/v1/stream/identify", {**hello, "group": "lab"}, audio)
    assert code == 4403
    everyone = {"format": "s16le", "sample_rate": rate, "key": keys["query"], "group": "lab"}
    frames, code = stream(server, "/v1/stream/identify", everyone, audio)
    assert code == 1000 and json.dumps(frames[-1]["result"]["speaker"]) == '"carlo"'


def test_the_python_client_takes_a_group(
    served: tuple[Server, dict[str, str]], clips: dict[str, list[bytes]]
) -> None:
    from speakerdb import Forbidden, GroupNotFound
    from speakerdb.client import Client

    server, keys = served
    url = f"http://127.0.0.1:{server.port}"
    carlo = clips["carlo"][5]
    everyone = Client(url, keys["query"])
    assert everyone.identify(carlo, group="lab")["speaker"] == "carlo"
    assert everyone.verify("carlo", carlo, group="door-a")["outcome"] == "rejected"
    with pytest.raises(GroupNotFound):
        everyone.identify(carlo, group="nope")
    with pytest.raises(Forbidden, match="bound to group 'door-a'"):
        Client(url, keys["door"]).identify(carlo, group="lab")
