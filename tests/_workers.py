"""Worker processes for the crash-safety and concurrency tests (not collected by pytest).

    python tests/_workers.py spawner LOG          fork one child per stdin command (see below)
    python tests/_workers.py writer DB LOG ID GO SECONDS
    python tests/_workers.py reader DB LOG ID GO SECONDS LOGDIR

The spawner imports everything once and then forks a child for each command
line it reads, so that a test can kill dozens of enrolling processes in a few
seconds. ``enroll DB START TOTAL CLOCK DELAY`` enrolls the planned speakers
START, START+1, ... TOTAL-1; ``save INDEX START CLOCK DELAY`` writes index files
in a loop; ``import DB ARCHIVE CLOCK DELAY`` imports an archive once. The
spawner SIGKILLs the child DELAY seconds after it forked it (CLOCK ``fork``) or
after the child opened its database (CLOCK ``open``), reaps it and answers
``killed`` or ``exited CODE`` on stdout.

Every worker appends one line per event to its LOG, with ``os.write`` on an
``O_APPEND`` descriptor, so that a line is in the file as soon as the call that
wrote it returned, whatever happens to the process afterwards.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder, voice

from speakerdb import DatabaseError, SpeakerDB
from speakerdb.storage import SpeakerIndex

RATE = 16000
INDEX_UUID = "crash-test"
INDEX_DIM = 128


# -- what the workers do, shared with the tests that check it --------------


def planned_name(number: int) -> str:
    return f"spk{number:03d}"


@functools.cache
def _envelopes(count: int = 640) -> np.ndarray:
    """One log-loudness envelope over FakeEncoder's 32 bands per speaker, pairwise cosine < 0.5."""
    rng = np.random.default_rng(7)
    chosen = np.zeros((0, 32))
    while len(chosen) < count:
        candidate = rng.standard_normal(32)
        candidate -= candidate.mean()
        candidate /= np.linalg.norm(candidate)
        if not len(chosen) or (chosen @ candidate).max() < 0.5:
            chosen = np.vstack([chosen, candidate])
    return chosen


def speaker_voice(number: int, take: int, seconds: float = 1.5) -> np.ndarray:
    """Clip ``take`` of synthetic speaker ``number`` (0 to 639), all clips distinct audio.

    A 100 Hz harmonic series whose loudness across FakeEncoder's 250 Hz bands
    follows the speaker's own envelope, with phases drawn for each take.
    Different speakers' embeddings are as far apart as real ones' (cosine under
    0.65, so that no quality gate takes one for another), and one speaker's
    clips agree (cosine over 0.99).
    """
    envelope = 0.3 * np.sqrt(32) * _envelopes()[number]
    size = int(seconds * RATE)
    harmonics = np.arange(1, 80)
    rng = np.random.default_rng([number, take])
    spectrum = np.zeros(size // 2 + 1, complex)
    spectrum[harmonics * 100 * size // RATE] = np.exp(
        envelope[np.minimum(31, harmonics * 100 // 250)]
        + 1j * rng.uniform(0, 2 * np.pi, harmonics.size)
    )
    wave = np.fft.irfft(spectrum, size)
    wave = wave / np.max(np.abs(wave)) + 0.003 * rng.standard_normal(size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def planned_clips(number: int) -> list[np.ndarray]:
    """The clips of planned enrollment ``number``: 1 to 3 distinct utterances of one voice."""
    return [speaker_voice(number, take) for take in range(1 + number % 3)]


def writer_clip(name: str) -> np.ndarray:
    """The one clip a concurrency writer enrolls ``name`` (``wW-KKK``, W < 10) from."""
    writer, number = name[1:].split("-")
    return speaker_voice((3 * int(number) + int(writer)) % 640, 0)


def index_content(generation: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids and vectors the save loop writes for ``generation``: the label names the content."""
    count = 2000 + 100 * (generation % 5)
    ids = np.arange(count, dtype=np.int64) + 10_000 * generation
    vectors = np.random.default_rng(generation).standard_normal((count, INDEX_DIM))
    return ids, vectors.astype(np.float32)


class EventLog:
    """Append-only event lines; each is in the kernel's hands once ``write`` returns."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, line: str, *, sync: bool = False) -> None:
        os.write(self._fd, (line.replace("\n", " ") + "\n").encode())
        if sync:
            os.fsync(self._fd)


def read_events(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split(" ", 2) for line in path.read_text().splitlines() if line]


class _ToEventLog(logging.Handler):
    def __init__(self, events: EventLog) -> None:
        super().__init__(logging.WARNING)
        self._events = events

    def emit(self, record: logging.LogRecord) -> None:
        self._events.write(f"{record.levelname.lower()} {os.getpid()} {record.getMessage()}")


def _log_warnings_to(events: EventLog) -> None:
    logger = logging.getLogger("speakerdb")
    logger.handlers[:] = [_ToEventLog(events)]
    logger.setLevel(logging.WARNING)


# -- crash tests: the spawner and its children -----------------------------


def enroll_loop(
    db_path: str, events: EventLog, start: int, total: int, opened: Callable[[], None]
) -> None:
    """Enroll planned speakers one after another; ``ok`` is logged once enroll() returned."""
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        opened()
        for number in range(start, total):
            name = planned_name(number)
            events.write(f"start {name}")
            db.enroll(name, [(clip, RATE) for clip in planned_clips(number)])
            events.write(f"ok {name}", sync=True)


def enroll_many_loop(
    db_path: str, events: EventLog, start: int, total: int, opened: Callable[[], None]
) -> None:
    """The same speakers through enroll_many, which commits several per transaction;
    ``ok`` is logged as each comes back committed. Chunks of 3 speakers, so that kills
    land before, inside and after commits."""
    from speakerdb.services import _enrolling

    _enrolling.CHUNK_SPEAKERS = 3

    def groups():  # type: ignore[no-untyped-def]
        for number in range(start, total):
            name = planned_name(number)
            events.write(f"start {name}")
            yield name, [(clip, RATE) for clip in planned_clips(number)]

    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        opened()
        for name, outcome in db.enroll_many(groups()):
            if isinstance(outcome, Exception):
                raise outcome
            events.write(f"ok {name}", sync=True)


def save_loop(index_path: str, events: EventLog, start: int, opened: Callable[[], None]) -> None:
    """Write the index file for generation ``start``, ``start + 1``, ... until killed."""
    path = Path(index_path)
    opened()
    for generation in range(start, start + 10_000):
        ids, vectors = index_content(generation)
        SpeakerIndex(INDEX_DIM, ids, vectors).save(path, INDEX_UUID, generation)
        events.write(f"saved {generation}")


def import_once(db_path: str, archive: str, events: EventLog, opened: Callable[[], None]) -> None:
    """Import ``archive`` into the database; ``ok import`` is logged once it returned."""
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        opened()
        events.write("start import")
        db.lifecycle.import_archive(archive)
        events.write("ok import", sync=True)


def _child(command: list[str], events: EventLog, opened: Callable[[], None]) -> None:
    _log_warnings_to(events)
    if command[0] == "import":
        import_once(command[1], command[2], events, opened)
    elif command[0] in ("enroll", "enroll-many"):
        loop = enroll_loop if command[0] == "enroll" else enroll_many_loop
        loop(command[1], events, int(command[2]), int(command[3]), opened)
    else:
        save_loop(command[1], events, int(command[2]), opened)


def _fork(command: list[str], events: EventLog) -> tuple[int, int]:
    """Start a child; return its pid and a pipe that gets a byte once its database is open."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the spawner's loop
        os.close(read_end)
        code = 0

        def opened() -> None:
            os.write(write_end, b"o")

        try:
            _child(command, events, opened)
        except BaseException as exc:
            events.write(f"error {type(exc).__name__} {exc}")
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _supervise(pid: int, opened: int, clock: str, delay: float) -> str:
    """Kill the child ``delay`` s after it was forked, or after it opened the database."""
    if clock == "open":
        select.select([opened], [], [], 60.0)  # a byte, or EOF when the child exits
    deadline = time.monotonic() + delay
    try:
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return f"exited {os.waitstatus_to_exitcode(status)}"
            time.sleep(0.001)
        # Not reaped yet, so the pid cannot have been reused: this kills our child.
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "killed"
    finally:
        os.close(opened)


def spawner(log_path: str) -> None:
    """Read ``MODE ARGS... CLOCK DELAY`` lines; answer ``killed`` or ``exited CODE`` to each."""
    import faiss  # noqa: F401  (loaded once here, not in every child)

    events = EventLog(Path(log_path))
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        pid, opened = _fork(command[:-2], events)
        print(_supervise(pid, opened, command[-2], float(command[-1])), flush=True)


# -- concurrency tests -----------------------------------------------------


def _wait_for(go: Path, events: EventLog) -> None:
    events.write(f"ready {os.getpid()}")
    while not go.exists():
        time.sleep(0.005)


def _guarded(events: EventLog, what: str, call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as exc:
        events.write(f"error {what}: {type(exc).__name__}: {exc}")
        return None


def writer(db_path: str, log_path: str, ident: int, go: str, seconds: float) -> None:
    """Enroll ``wID-000``, ``wID-001``, ...; check each; remove every third one's predecessor."""
    events = EventLog(Path(log_path))
    _log_warnings_to(events)
    _wait_for(Path(go), events)
    deadline = time.monotonic() + seconds
    db = _guarded(events, "open", lambda: SpeakerDB(db_path, encoder=FakeEncoder()))
    if not isinstance(db, SpeakerDB):
        return
    with db:
        for number in range(200):
            if time.monotonic() > deadline:
                break
            _writer_step(db, events, ident, number)
    events.write("done")


def _writer_step(db: SpeakerDB, events: EventLog, ident: int, number: int) -> None:
    name = f"w{ident}-{number:03d}"
    clip = writer_clip(name)
    events.write(f"enrolling {name}")
    if _guarded(events, f"enroll {name}", lambda: db.enroll(name, [(clip, RATE)])) is None:
        return
    events.write(f"enrolled {name}")
    found = _guarded(events, f"identify {name}", lambda: db.identify((clip, RATE)))
    if found is not None:
        best = found.best  # type: ignore[attr-defined]
        if best is None or best.speaker != name or best.score < 0.9999:
            events.write(f"bad own {name} -> {best}")
    events.write("op identify")
    if number % 3 == 2:
        victim = f"w{ident}-{number - 1:03d}"
        events.write(f"removing {victim}")
        if _guarded(events, f"remove {victim}", lambda: db.remove(victim)) is not None:
            events.write(f"removed {victim}")


def writer_state(log_dir: Path) -> tuple[set[str], set[str], set[str]]:
    """Names writers started enrolling, finished enrolling, and started removing."""
    started: set[str] = set()
    enrolled: set[str] = set()
    removing: set[str] = set()
    for path in log_dir.glob("writer-*.log"):
        for event in read_events(path):
            if event[0] == "enrolling":
                started.add(event[1])
            elif event[0] == "enrolled":
                enrolled.add(event[1])
            elif event[0] == "removing":
                removing.add(event[1])
    return started, enrolled, removing


def reader(db_path: str, log_path: str, ident: int, go: str, seconds: float, log_dir: str) -> None:
    """Identify clips of enrolled speakers in a loop; log every inconsistent answer."""
    events = EventLog(Path(log_path))
    _log_warnings_to(events)
    _wait_for(Path(go), events)
    deadline = time.monotonic() + seconds
    rng = random.Random(ident)
    db = _guarded(events, "open", lambda: SpeakerDB(db_path, encoder=FakeEncoder()))
    if not isinstance(db, SpeakerDB):
        return
    with db:
        for _ in range(5000):
            if time.monotonic() > deadline:
                break
            _reader_step(db, events, rng, Path(log_dir))
    events.write("done")


def _reader_step(db: SpeakerDB, events: EventLog, rng: random.Random, log_dir: Path) -> None:
    _, enrolled, removing = writer_state(log_dir)
    candidates = sorted(enrolled - removing)
    if not candidates:
        _guarded(events, "identify", lambda: _identify_stranger(db))
        time.sleep(0.01)
        return
    name = rng.choice(candidates)
    clip = writer_clip(name)
    found = _guarded(events, f"identify {name}", lambda: db.identify((clip, RATE), top_k=5))
    events.write("op identify")
    if found is None:
        return
    started, _, removing = writer_state(log_dir)
    matches = found.matches  # type: ignore[attr-defined]
    scores = [m.score for m in matches]
    if scores != sorted(scores, reverse=True) or len(matches) > 5:
        events.write(f"bad order {name} -> {matches}")
    for match in matches:
        if match.speaker not in started:
            events.write(f"bad never-enrolled {name} -> {match}")
    if name not in removing:
        best = found.best  # type: ignore[attr-defined]
        if best is None or best.speaker != name or best.score < 0.9999:
            events.write(f"bad missing {name} -> {matches}")


def _identify_stranger(db: SpeakerDB) -> object:
    """Identify a voice nobody enrolled; until the first enrollment commits, the database
    does not exist yet and refuses to be queried, which is expected too."""
    try:
        return db.identify((voice(300.0, 1.0), RATE))
    except DatabaseError as exc:
        if "no such database" in str(exc) or "not finished" in str(exc):
            return None
        raise


def main(argv: list[str]) -> None:
    role = argv[0]
    if role == "spawner":
        spawner(argv[1])
    elif role == "writer":
        writer(argv[1], argv[2], int(argv[3]), argv[4], float(argv[5]))
    elif role == "reader":
        reader(argv[1], argv[2], int(argv[3]), argv[4], float(argv[5]), argv[6])
    else:
        sys.exit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
