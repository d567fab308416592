"""The voiceprint lifecycle through the library and the CLI: metadata (external id,
attributes), backups, retention (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from typer.testing import CliRunner, Result

from speakerdb import DuplicateSpeaker, InputError, SpeakerDB, SpeakerNotFound
from speakerdb.cli import app
from speakerdb.storage.sqlite import open_reader

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 2300.0}


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SpeakerDB]:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    database.enroll("alice", [clip("alice", 1), clip("alice", 2)])
    database.enroll("bob", [clip("bob", 3)])
    yield database
    database.close()


@pytest.fixture
def cli(db: SpeakerDB, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``speakerdb ARGS --db <db>`` in-process, with the fake encoder."""
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(app, [*map(str, args), "--db", str(db.path)])

    return run


def write_clip(folder: Path, name: str, seed: int) -> Path:
    path = folder / f"{name}{seed}.wav"
    sf.write(path, *clip(name, seed))
    return path


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakerdb: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# -- metadata ----------------------------------------------------------------------


def test_enroll_sets_the_external_id_and_attributes(db: SpeakerDB) -> None:
    made = db.enroll("carol", [clip("carol", 4)], external_id=" E7 ", attributes={"team": "a"})
    assert (made.speaker.external_id, made.speaker.attributes) == ("E7", {"team": "a"})
    more = db.enroll("carol", [clip("carol", 5)], attributes={"floor": 3, "team": None})
    assert (more.speaker.external_id, more.speaker.attributes) == ("E7", {"floor": 3})
    assert db.speaker("carol") == more.speaker
    assert db.lifecycle.find("E7") == more.speaker
    with pytest.raises(SpeakerNotFound, match="E8"):
        db.lifecycle.find("E8")


def test_metadata_alone_on_clips_enrolled_already(db: SpeakerDB) -> None:
    again = db.enroll("alice", [clip("alice", 1)], external_id="E1")
    assert again.added == () and again.speaker.external_id == "E1"


def test_a_refused_enrollment_changes_nothing(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1")
    before = db.speakers()
    with pytest.raises(DuplicateSpeaker, match="'E1' belongs to speaker 'alice'"):
        db.enroll("carol", [clip("carol", 4)], external_id="E1")
    with pytest.raises(InputError, match="meta alice --id NEW"):
        db.enroll("alice", [clip("alice", 6)], external_id="E2")
    assert db.speakers() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"external_id": ""}, "empty"),
        ({"external_id": "a\x1b[2J"}, "control characters"),
        ({"external_id": "x" * 129}, "at most 128"),
        ({"attributes": {"t": float("nan")}}, "JSON values"),
        ({"attributes": {"t": object()}}, "JSON values"),
        ({"attributes": {"": 1}}, "non-empty"),
        ({"attributes": ["a"]}, "mapping"),
        ({"attributes": {"t": "x" * 20_000}}, "at most 16384"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_written(
    db: SpeakerDB, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        db.enroll("carol", [clip("carol", 4)], **kwargs)
    assert [s.name for s in db.speakers()] == ["alice", "bob"]


def test_set_metadata_changes_or_clears_the_external_id(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1", attributes={"a": [1, 2]})
    changed = db.lifecycle.set_metadata("alice", external_id="E2")
    assert (changed.external_id, changed.attributes) == ("E2", {"a": [1, 2]})
    cleared = db.lifecycle.set_metadata("alice", external_id=None, attributes={"a": None})
    assert (cleared.external_id, cleared.attributes) == (None, {})


def test_the_fast_reader_shows_the_same_metadata(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1", attributes={"team": "night", "n": 2})
    reader = open_reader(db.path)
    assert reader is not None
    with reader:
        assert reader.speakers() == db.speakers()
        assert reader.speaker("alice") == db.speaker("alice")


def test_metadata_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    enrolled = cli(
        "enroll",
        "carol",
        write_clip(tmp_path, "carol", 4),
        "--id",
        "E7",
        "--attr",
        "team=night shift",
        "--attr",
        "floor:=3",
        "--json",
    )
    assert enrolled.exit_code == 0, enrolled.output
    speaker = json.loads(enrolled.stdout)["speaker"]
    assert (speaker["external_id"], speaker["attributes"]) == (
        "E7",
        {"floor": 3, "team": "night shift"},
    )
    shown = cli("show", "carol")
    assert "external id: E7" in shown.stdout and "attribute floor = 3" in shown.stdout
    assert "attribute team = night shift" in shown.stdout
    as_json = json.loads(cli("show", "carol", "--json").stdout)["speaker"]
    assert as_json["attributes"] == {"floor": 3, "team": "night shift"}
    changed = cli("meta", "carol", "--id", "E8", "--attr", "floor:=null", "--json")
    assert json.loads(changed.stdout)["external_id"] == "E8"
    assert "attribute floor" not in cli("show", "carol").stdout
    assert "no external id or attributes" in cli("meta", "bob").stdout


def test_bad_metadata_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    carol = write_clip(tmp_path, "carol", 4)
    one_line_error(cli("enroll", "carol", carol, "--attr", "team"), "key=value")
    one_line_error(cli("enroll", "carol", carol, "--attr", "n:=[1"), "not JSON")
    one_line_error(cli("meta", "alice", "--id", "E1", "--clear-id"), "not both")
    assert cli("meta", "alice", "--id", "E1").exit_code == 0
    one_line_error(cli("enroll", "carol", carol, "--id", "E1"), "belongs to speaker 'alice'")
    assert "carol" not in cli("list").stdout
