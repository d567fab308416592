"""Issue 16, "trust nothing on disk": names that cannot impersonate, a model cache
that is checked at load, lock and index files that refuse symlinks, and --db paths
that stay paths. Each test failed on the main branch these fixes were made against.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import DatabaseError, InvalidName, ModelError, SpeakerDB
from speakerdb.cli import app

RUNNER = CliRunner()


def clips(pitch: float, n: int = 3) -> list[tuple[np.ndarray, int]]:
    return [(voice(pitch, seed=k), 16000) for k in range(n)]


@pytest.fixture
def db(tmp_path: Path):
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as database:
        database.enroll("alice", clips(180.0))
        database.enroll("bob", clips(110.0))
        yield database


# -- finding 3: names are identities ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "alice\u3164",  # HANGUL FILLER
        "alice\u2800",  # BRAILLE PATTERN BLANK
        "alice\u034f",  # COMBINING GRAPHEME JOINER
        "alice\ufe0f",  # VARIATION SELECTOR-16
        "\u0430lice",  # Cyrillic a (U+0430)
        "\uff41\uff4c\uff49\uff43\uff45",  # full-width
        "Alice",
        "ALICE",
        "aIice",  # capital I for l
    ],
)
def test_a_name_that_passes_for_another_is_refused(db: SpeakerDB, name: str) -> None:
    with pytest.raises(InvalidName):
        db.enroll(name, clips(300.0))
    assert sorted(s.name for s in db.speakers()) == ["alice", "bob"]
    assert db.speaker("alice").n_utterances == 3


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("carol\u3164", "U+3164"),
        ("carol\u2800", "U+2800"),
        ("carol\u034f", "U+034F"),
        ("carol\ufe0f", "U+FE0F"),
        ("c\u0430rol", "mixes scripts"),
    ],
)
def test_invisible_or_mixed_script_names_are_refused_even_when_unique(
    db: SpeakerDB, name: str, fragment: str
) -> None:
    with pytest.raises(InvalidName, match=re.escape(fragment)):
        db.enroll(name, clips(300.0))


@pytest.mark.parametrize("name", ["front/back", "/", ".", ".."])
def test_a_name_the_services_urls_cannot_carry_is_refused(db: SpeakerDB, name: str) -> None:
    with pytest.raises(InvalidName, match="pick another name"):
        db.enroll(name, clips(300.0))
    with pytest.raises(InvalidName, match="pick another name"):
        db.rename("bob", name)
    db.enroll("front-back", clips(300.0))  # the name the message suggests
    db.enroll("a.b", clips(320.0))  # dots within a name are no path step


def test_plain_names_in_any_one_script_are_accepted(db: SpeakerDB) -> None:
    for k, name in enumerate(["jürgen", "иван", "山田 たろう", "alice smith", "Zoë-2"]):
        db.enroll(name, clips(200.0 + 25 * k))
    assert len(db.speakers()) == 7


def test_clips_are_added_only_through_the_exact_name(db: SpeakerDB) -> None:
    with pytest.raises(InvalidName, match="give 'alice' exactly"):
        db.enroll("alice\u00a0", clips(300.0))
    assert db.speaker("alice").n_utterances == 3
    db.enroll("alice", [(voice(180.0, seed=9), 16000)])
    assert db.speaker("alice").n_utterances == 4


def test_rename_applies_the_rules_to_the_new_name(db: SpeakerDB) -> None:
    for name in ["\u0430lice", "Alice", "bob\u3164", "ALICE"]:
        with pytest.raises(InvalidName):
            db.rename("bob", name)
    db.rename("alice", "Alice")  # its own look-alike: nothing else looks like it
    assert sorted(s.name for s in db.speakers()) == ["Alice", "bob"]


def test_names_enrolled_before_the_rules_stay_reachable(tmp_path: Path) -> None:
    """Lookups stay exact: a look-alike enrolled earlier is found, shown and removed as is."""
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(180.0))
        db.enroll("mallory", clips(110.0))
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE speakers SET name = ? WHERE name = 'mallory'", ("alice\u3164",))
    con.close()
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.speaker("alice\u3164").n_utterances == 3
        db.enroll("alice\u3164", [(voice(110.0, seed=7), 16000)])
        with pytest.raises(InvalidName):
            db.enroll("ALICE", clips(300.0))
        db.remove("alice\u3164")
        assert [s.name for s in db.speakers()] == ["alice"]


@pytest.mark.slow
def test_cli_refuses_a_look_alike_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    monkeypatch.chdir(tmp_path)
    for name, pitch in [("a", 180.0), ("b", 300.0)]:
        for k in range(3):
            sf.write(tmp_path / f"{name}{k}.wav", voice(pitch, seed=k), 16000)
    first = RUNNER.invoke(
        app,
        ["enroll", "alice", "a0.wav", "a1.wav", "a2.wav", "--model", "resemblyzer"],
        catch_exceptions=False,
    )
    if first.exit_code != 0:
        pytest.skip(f"resemblyzer encoder not available: {first.output}")
    result = RUNNER.invoke(
        app, ["enroll", "\u0430lice", "b0.wav", "b1.wav", "b2.wav"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "mixes scripts" in result.stderr
    listed = RUNNER.invoke(app, ["list", "--json"], catch_exceptions=False)
    assert "\\u0430" not in listed.stdout and "\u0430" not in listed.stdout


# -- finding 7: lock and index files refuse symlinks ------------------------------


def test_a_planted_lock_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(180.0))
        index_path = db.index.path
    lock = index_path.with_name(index_path.name + ".lock")
    lock.unlink(missing_ok=True)
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    lock.symlink_to(target)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"symbolic link.*rm "):
            db.identify((voice(180.0, seed=5), 16000))
        with pytest.raises(DatabaseError, match="symbolic link"):
            db.enroll("bob", clips(110.0))
    assert not target.exists()
    assert [s.name for s in SpeakerDB(path, encoder=FakeEncoder()).speakers()] == ["alice"]


def test_a_symlinked_index_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(180.0))
        index_path = db.index.path
    forged = tmp_path / "forged.faiss"
    index_path.rename(forged)
    index_path.symlink_to(forged)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match="symbolic link"):
            db.identify((voice(180.0, seed=5), 16000))
    index_path.unlink()  # the fix the error names
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.identify((voice(180.0, seed=5), 16000)).speaker == "alice"


# -- finding 5: paths are paths ------------------------------------------------------


@pytest.mark.parametrize("name", ["door?v=1.db", "%41.db", "a#b.db", "x?mode=ro.db"])
def test_db_paths_keep_url_characters(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(180.0))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(name)] == []
    assert path.stat().st_mode & 0o777 == 0o600
    con = sqlite3.connect(str(path))  # not a URI: the name as it is
    assert con.execute("SELECT name FROM speakers").fetchall() == [("alice",)]
    con.close()


@pytest.mark.slow
def test_cli_db_path_with_url_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPEAKERDB_DB", raising=False)
    for k in range(3):
        sf.write(tmp_path / f"a{k}.wav", voice(180.0, seed=k), 16000)
    for name in ["door?v=1.db", "%41.db"]:
        result = RUNNER.invoke(
            app,
            [
                "enroll",
                "alice",
                "a0.wav",
                "a1.wav",
                "a2.wav",
                "--db",
                name,
                "--model",
                "resemblyzer",
            ],
            catch_exceptions=False,
        )
        if result.exit_code != 0 and "resemblyzer" in result.output:
            pytest.skip(f"resemblyzer encoder not available: {result.output}")
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "door").exists() and not (tmp_path / "A.db").exists()


# -- finding 2: model artefacts verified at load ------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own, not yet created (the model is passed explicitly)."""
    monkeypatch.setenv("SPEAKERDB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def embed_with(model_dir: Path, db_path: Path, samples: list[np.ndarray]) -> np.ndarray:
    with SpeakerDB(db_path, model=str(model_dir), backend="onnx") as db:
        return db.embed([(s, 16000) for s in samples])


def constant_graph(dim: int) -> bytes:
    """A valid ONNX graph that ignores its input and always gives the same vector."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor("v", TensorProto.FLOAT, [1, dim], [1.0] * dim)
    node = helper.make_node("Constant", [], ["output"], value=value)
    graph = helper.make_graph(
        [node],
        "forged",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "length"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, dim])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.slow
@pytest.mark.parametrize("swapped", ["export", "prepared model"])
def test_a_swapped_model_export_is_rebuilt(
    tiny_model_dir: Path,
    cache: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    swapped: str,
) -> None:
    import logging

    samples = [voice(120.0, seed=1), voice(260.0, seed=2)]
    honest = embed_with(tiny_model_dir, tmp_path / "a.db", samples)
    export = next(p for p in (cache / "onnx").glob("*.onnx"))
    prepared = next((cache / "onnx").glob(f"{export.stem}-prepared-*"))
    forged = constant_graph(honest.shape[1])
    if swapped == "export":
        shutil.rmtree(prepared)
        export.write_bytes(forged)
    else:
        (prepared / "model.onnx").write_bytes(forged)
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        again = embed_with(tiny_model_dir, tmp_path / "b.db", samples)
    assert "SHA-256 mismatch" in caplog.text
    np.testing.assert_allclose(again, honest, atol=2e-6)
    assert export.read_bytes() != forged


@pytest.mark.slow
def test_cache_files_and_folders_are_owner_only(
    tiny_model_dir: Path, cache: Path, tmp_path: Path
) -> None:
    embed_with(tiny_model_dir, tmp_path / "a.db", [voice(120.0)])
    loose = {
        str(p.relative_to(cache)): oct(p.stat().st_mode & 0o777)
        for p in [cache, *cache.rglob("*")]
        if p.stat().st_mode & 0o077
    }
    assert loose == {}


def test_a_cache_root_others_can_write_is_refused(
    tiny_model_dir: Path, cache: Path, tmp_path: Path
) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(ModelError, match="chmod 700"):
        embed_with(tiny_model_dir, tmp_path / "a.db", [voice(120.0)])
    if os.geteuid() == 0:  # owned by another user: refused however it is set
        os.chown(cache, 65534, 65534)
        cache.chmod(0o755)
        with pytest.raises(ModelError, match=r"another user.*SPEAKERDB_CACHE_DIR"):
            embed_with(tiny_model_dir, tmp_path / "b.db", [voice(120.0)])


def test_a_look_alike_enrolled_by_another_process_meanwhile_is_refused_at_commit(
    db: SpeakerDB, tmp_path: Path
) -> None:
    """The name check runs again under the write lock: a look-alike that another process
    enrolled between this call's preparing and its commit is refused, not admitted."""
    other = SpeakerDB(db.path, encoder=FakeEncoder())

    def groups():  # type: ignore[no-untyped-def]
        yield "Carol", clips(300)  # no carol is enrolled yet
        other.enroll("carol", clips(240))  # meanwhile, before this chunk commits

    outcomes = dict(db.enroll_many(groups()))
    other.close()
    assert isinstance(outcomes["Carol"], InvalidName), outcomes
    assert [s.name for s in db.speakers()] == ["alice", "bob", "carol"]
