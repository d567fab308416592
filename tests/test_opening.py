"""Opening a database: the file is created by the first write, never by a read, and a
first write that never committed (its process killed) leaves nothing that later
commands take for a database with a model.

Issue 17 item 9 and issue 16 findings 8, 9 and 10.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice

from speakerdb import AudioError, DatabaseError, DuplicateUtterance, SpeakerDB

RATE = 16000


def clips(pitch: float, n: int = 3) -> list[tuple[np.ndarray, int]]:
    return [(voice(pitch, seed=seed), RATE) for seed in range(n)]


# -- the file is created at the first write ----------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda db: db.speakers(),
        lambda db: db.info(),
        lambda db: db.identify(clips(150)[0]),
        lambda db: db.verify("alice", clips(150)[0]),
        lambda db: db.utterances("alice"),
        # Each service refuses it itself: the facade only delegates.
        lambda db: db.identify_many([clips(150)[0]]),
        lambda db: db.speaker("alice"),
        lambda db: db.rename("alice", "alicia"),
        lambda db: db.remove("alice"),
        lambda db: db.lifecycle.remove_utterance(1),
        lambda db: db.segments(clips(150)[0]),
        lambda db: db.segments_live(RATE),
        lambda db: db.calibrate(),
        lambda db: db.lifecycle.find("e-1"),
        lambda db: db.lifecycle.opt_outs(),
        lambda db: db.lifecycle.kept_audio(),
        lambda db: db.lifecycle.idle_days(),
    ],
    ids=[
        "speakers",
        "info",
        "identify",
        "verify",
        "utterances",
        "identify_many",
        "speaker",
        "rename",
        "remove",
        "remove_utterance",
        "segments",
        "segments_live",
        "calibrate",
        "find",
        "opt_outs",
        "kept_audio",
        "idle_days",
    ],
)
def test_reading_a_missing_database_raises_and_creates_nothing(tmp_path: Path, read) -> None:
    path = tmp_path / "typo.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"typo\.db: no such database; check --db, or"):
            read(db)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda db: db.lifecycle.remove("alice"),
        lambda db: db.lifecycle.opt_out("alice"),
        lambda db: db.lifecycle.expire(),
        lambda db: db.lifecycle.set_metadata("alice", external_id="e-1"),
        lambda db: db.lifecycle.set_watchlist("alice"),
        lambda db: db.lifecycle.clear_opt_out("alice"),
    ],
    ids=["remove", "opt_out", "expire", "set_metadata", "set_watchlist", "clear_opt_out"],
)
def test_a_lifecycle_change_refuses_a_missing_database_and_creates_nothing(
    tmp_path: Path, change
) -> None:
    """A change to people who cannot be there (a mistyped path) is refused as ``db.remove``
    refuses it, before the write that would leave an unfinished database behind."""
    path = tmp_path / "typo.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"typo\.db: no such database; check --db, or"):
            change(db)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatabaseError, match="no such database"):
        SpeakerDB(path, create=False)


def test_the_first_enrollment_creates_the_database_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert not path.exists()
        db.enroll("alice", clips(150))
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
        assert [s.name for s in db.speakers()] == ["alice"]
        assert db.identify(clips(150)[0]).speaker == "alice"
    with SpeakerDB(path) as db:
        assert db.model == "fake-encoder"


def test_a_settings_write_creates_the_database(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path) as db:
        db.set_threshold(0.7)
        assert db.speakers() == []
    with SpeakerDB(path, create=False) as db:
        assert db.policy().threshold == pytest.approx(0.7)


def test_create_false_still_refuses_a_missing_file_at_once(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no such database"):
        SpeakerDB(tmp_path / "typo.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_first_enrollment_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(AudioError):
            db.enroll("alice", [(np.zeros(RATE, np.float32), RATE)])  # silence: refused
    assert list(tmp_path.iterdir()) == []


def _stillborn(path: Path) -> None:
    """What a process killed between creating the schema and committing its first
    enrollment leaves: a database at the head schema with nothing in it."""
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.set_threshold(0.5)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM settings")
    conn.close()


def test_a_database_whose_first_write_never_committed_is_new(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    _stillborn(path)
    with SpeakerDB(path, create=False) as db:
        # Not a database built with the default hub model: not a database at all yet.
        with pytest.raises(DatabaseError, match=r"not finished: .* enroll a speaker to create"):
            db.identify(clips(150)[0])
    with SpeakerDB(path, encoder=FakeEncoder(dim=16, model="other-encoder")) as db:
        db.enroll("alice", clips(150))
        encoder = db.info().encoder
        assert encoder is not None and (encoder.model, encoder.dim) == ("other-encoder", 16)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() and SIGKILL")
def test_a_first_enrollment_killed_at_any_moment_is_redone_by_the_next_run(
    tmp_path: Path,
) -> None:
    """The crash harness of tests/test_crash_safety.py kills a process during its first
    enrollment; running the same enrollment again then succeeds, with the model it asks."""
    from _workers import RATE as WORKER_RATE
    from _workers import planned_clips, planned_name
    from test_crash_safety import Spawner

    rng = random.Random(20261206)
    name = planned_name(0)
    outcomes = []
    with Spawner(tmp_path / "events.txt", tmp_path / "stderr.txt") as spawner:
        for attempt in range(16):
            path = tmp_path / f"db{attempt}.db"
            delay = rng.uniform(0.0, 0.6)
            outcomes.append(spawner.run("enroll", path, 0, 1, clock="open", delay=delay))
            if os.path.lexists(path):
                with SpeakerDB(path, create=False) as db:
                    try:  # committed, or refused as unfinished: never read as a model's
                        assert [s.name for s in db.speakers()] == [name]
                    except DatabaseError as exc:
                        assert "not finished" in str(exc)
            with SpeakerDB(path, encoder=FakeEncoder()) as db:  # the run again
                with contextlib.suppress(DuplicateUtterance):  # committed before the kill
                    db.enroll(name, [(clip, WORKER_RATE) for clip in planned_clips(0)])
                assert db.identify((planned_clips(0)[0], WORKER_RATE)).speaker == name
    assert outcomes.count("killed") >= 4, outcomes


def test_the_cli_refuses_an_unfinished_database_instead_of_using_the_default_model(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from speakerdb.cli import app

    path = tmp_path / "speakers.db"
    _stillborn(path)
    clip = tmp_path / "x.wav"
    sf.write(clip, voice(150), RATE)
    for command in (["identify", str(clip)], ["list"], ["info"], ["verify", "alice", str(clip)]):
        result = CliRunner().invoke(app, [*command, "--db", str(path)])
        assert result.exit_code == 2, result.output
        assert "not finished" in result.stderr and "enroll a speaker" in result.stderr


# -- each error names the fix (issue 16 finding 8) ----------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[bool]:
    """Make ``folder`` read-only for this process; yield whether that was possible.

    chmod does not stop root (the CI runs as root): there the folder is made immutable
    with ``chattr +i``, which does; where neither works, yield False.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield True
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", folder], check=False).returncode:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run([chattr, "-i", folder], check=True)


def test_a_read_only_folder_names_the_folder_and_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "doors"
    folder.mkdir()
    with SpeakerDB(folder / "speakers.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(150))
    (folder / "speakers.db-wal").unlink(missing_ok=True)  # as after the last process exits
    (folder / "speakers.db-shm").unlink(missing_ok=True)
    with read_only(folder) as possible:
        if not possible:
            pytest.skip("no way to make a folder read-only for this user")
        with pytest.raises(DatabaseError) as caught:
            with SpeakerDB(folder / "speakers.db", encoder=FakeEncoder()) as db:
                db.identify(clips(150)[0])
        new = SpeakerDB(folder / "new.db", encoder=FakeEncoder())
        with pytest.raises(DatabaseError, match=f"make the folder {folder} writable"):
            new.enroll("alice", clips(150))
        new.close()
    assert "not an SQLite database" not in str(caught.value)
    assert f"make the folder {folder} writable" in str(caught.value)
    assert not (folder / "new.db").exists()


def test_a_folder_that_refuses_the_new_file_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated, for machines where the test above cannot make a folder read-only.
    real_open = os.open

    def refuse(path: object, flags: int, *args: object) -> int:
        if str(path).endswith("speakers.db") and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=f"Permission denied.*folder {tmp_path} writable"):
            db.enroll("alice", clips(150))
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_wal_is_refused_by_name_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    folder = tmp_path / "doors"
    folder.mkdir()
    (folder / "speakers.db-wal").symlink_to(target)
    with SpeakerDB(folder / "speakers.db", encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"db-wal: is a symbolic link.* remove it"):
            db.enroll("alice", clips(150))
    assert sorted(p.name for p in folder.iterdir()) == ["speakers.db-wal"]
    assert not target.exists()


_LIMITED = """
import resource, signal, sys
sys.path.insert(0, sys.argv[2])
from conftest import FakeEncoder, voice
from speakerdb import DatabaseError, SpeakerDB

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
with SpeakerDB(sys.argv[1], encoder=FakeEncoder()) as db:
    try:
        for n in range(200):
            db.enroll(f"p{n}", [(voice(90 + 3 * n, seed=s), 16000) for s in range(3)], force=True)
    except DatabaseError as exc:
        print(exc)
"""


def test_a_file_size_limit_is_named_with_its_fix(tmp_path: Path) -> None:
    tests = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(tmp_path / "speakers.db"), str(tests)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "file-size limit, `ulimit -f`" in proc.stdout, proc.stdout + proc.stderr
    assert "ulimit -f unlimited" in proc.stdout


def test_a_full_disk_is_named_with_its_fix(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        with SpeakerDB(folder / "speakers.db", encoder=FakeEncoder()) as db:
            with pytest.raises(DatabaseError, match=r"is full .*free space and retry"):
                for n in range(400):
                    db.enroll(f"p{n}", clips(90 + 3 * n), force=True)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# -- forking (issue 16 finding 10) ---------------------------------------------

CHILDREN = 4
QUERIES = 20


def _identify_in_child(db: SpeakerDB, probe: tuple[np.ndarray, int]) -> None:
    for _ in range(QUERIES):
        assert db.identify(probe).speaker == "alice"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_children_use_the_parents_database_without_hanging(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "speakers.db"
    probe = clips(150)[0]
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(150))
        db.enroll("bob", clips(230))
        db.audit.configure(True)
        assert db.identify(probe).speaker == "alice"  # the parent's pool and index are warm
        context = multiprocessing.get_context("fork")
        children = [
            context.Process(target=_identify_in_child, args=(db, probe)) for _ in range(CHILDREN)
        ]
        for child in children:
            child.start()
        try:
            for _ in range(QUERIES):  # the parent goes on meanwhile, and then closes
                assert db.identify(probe).speaker == "alice"
            db.close()
            for child in children:
                child.join(timeout=120)
            assert [c.exitcode for c in children] == [0] * CHILDREN
        finally:
            for child in children:
                if child.is_alive():
                    child.kill()
                    child.join()
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        logged = db.audit.entries()
    assert len(logged) == 1 + QUERIES + CHILDREN * QUERIES
