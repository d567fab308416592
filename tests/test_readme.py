"""The README's Python API section, run as a new user runs it: its code block pasted
into a script, on real speech from the corpus and the offline GE2E encoder.

Only the names the block leaves to the reader are given (``samples``, ``wav_bytes``,
``chunks``, ``chunk``, the clip files it names, and ``./usat-onnx``, a model folder of
another model than the database's: here a tiny random x-vector checkpoint).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, fake_cli, read_rows, voice

from speakerdb.audio import load_clip

RATE = 16_000
# Each file the block names, from a speaker of its own (the enrollment gates refuse a
# new speaker who sounds like an enrolled one).
CLIPS = {
    "d1.wav": ("fillets-nl-big", 100),
    "e1.wav": ("asterisk-menardi-it", 100),
    "m1.wav": ("asterisk-ivrvoice-ru", 100),
    "f1.wav": ("fillets-cs-small", 100),
    "f2.wav": ("fillets-cs-small", 101),
    "o1.wav": ("fillets-nl-small", 100),
    "o2.wav": ("fillets-nl-small", 101),
    "c1.wav": ("fillets-cs-big", 100),
    "c2.wav": ("fillets-cs-big", 101),
    "g1.wav": ("asterisk-carlo-it", 100),
}


def python_api_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "README's Python API section has no python block"
    return found.group(1)


def clip_of(corpus: Path, speaker: str, index: int) -> Path:
    return sorted((corpus / "wav" / speaker).glob("*.wav"))[index]


def write_csv(path: Path, header: str, rows: list[tuple[str, str]]) -> None:
    path.write_text("\n".join([header, *(f"{a},{b}" for a, b in rows)]) + "\n")


@pytest.fixture
def site(corpus: Path, tmp_path: Path, tiny_model_dir: Path) -> Path:
    """The files the block names, in a new folder."""
    enroll = read_rows(corpus / "protocol" / "enroll.csv")
    test = read_rows(corpus / "protocol" / "test_concat3s.csv")
    alice = [r["path"] for r in enroll if r["speaker_id"] == "asterisk-allison"]
    for i, path in enumerate(alice, 1):
        shutil.copy(path, tmp_path / f"alice{i}.wav")
    visits = [r["path"] for r in test if r["speaker_id"] == "asterisk-allison"]
    shutil.copy(visits[0], tmp_path / "visitor.wav")
    shutil.copy(visits[1], tmp_path / "door.wav")
    samples, rate = sf.read(visits[2], dtype="float32")
    sf.write(tmp_path / "v.flac", samples, rate)
    for name, (speaker, index) in CLIPS.items():
        shutil.copy(clip_of(corpus, speaker, index), tmp_path / name)
    people = [r for r in enroll if r["speaker_id"] in ("asterisk-july-esco", "asterisk-june-frca")]
    write_csv(
        tmp_path / "people.csv", "speaker,path", [(r["speaker_id"], r["path"]) for r in people]
    )
    shutil.copy(corpus / "protocol" / "enroll.csv", tmp_path / "enroll.csv")
    held_out = [r for r in test if r["speaker_id"] in ("asterisk-carlo-it", "asterisk-armelle-fr")]
    write_csv(
        tmp_path / "test.csv", "speaker,path", [(r["speaker_id"], r["path"]) for r in held_out]
    )
    turns = [
        clip_of(corpus, s, i)
        for i in (40, 41, 42)
        for s in ("asterisk-allison", "fillets-cs-small")
    ]
    pause = np.zeros(RATE // 5, np.float32)
    meeting = np.concatenate([part for p in turns for part in (load_clip(p).samples, pause)])
    sf.write(tmp_path / "meeting.wav", meeting, RATE)
    (tmp_path / "audio.key").write_text("0123456789abcdef" * 4 + "\n")
    shutil.copytree(tiny_model_dir, tmp_path / "usat-onnx")
    return tmp_path


def test_the_python_api_block_runs_as_written(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(site)
    meeting, _ = sf.read("meeting.wav", dtype="float32")
    door, _ = sf.read("c2.wav", dtype="float32")
    import soxr

    given = {
        "samples": soxr.resample(door, RATE, 44_100),  # the block says 44100 Hz
        "wav_bytes": Path("door.wav").read_bytes(),
        "chunks": [meeting[i : i + 4800] for i in range(0, len(meeting), 4800)],
        # One second of live audio: too short for a voice, which failed once.
        "chunk": meeting[:RATE],
    }
    code = compile(python_api_block(), "README.md (Python API)", "exec")
    exec(code, given)  # the README's own block, as a user pastes it
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] in ("alice", "unknown")
    assert Path("new.db").is_file() and Path("people.sdb").is_file()


def shell_block_after(marker: str) -> list[list[str]]:
    """The ``speakerdb`` commands of the indented block that follows ``marker``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(marker, 1)[1].split("\n\n", 2)[1]
    lines = [line.split("#", 1)[0].split() for line in block.splitlines()]
    assert all(words[0] == "speakerdb" for words in lines), block
    return [words[1:] for words in lines]


def test_the_groups_example_runs_in_its_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_voice: Any
) -> None:
    # It deleted the group `lab` before confining `segments` to it.
    monkeypatch.chdir(tmp_path)
    for name, pitch in {"a1.wav": 110, "a2.wav": 111, "visitor.wav": 110, "door.wav": 500}.items():
        write_voice(name, pitch, seed=int(pitch))
    sf.write(
        "meeting.wav", np.concatenate([voice(110, 6.0, RATE, 1), voice(260, 6.0, RATE, 2)]), RATE
    )
    fake_cli("enroll", "bob", write_voice("b1.wav", 260, seed=3))
    fake_cli("enroll", "carol", write_voice("c1.wav", 500, seed=4))
    for args in shell_block_after("**Groups.**"):
        fake_cli(*args, code=1 if args[0] == "verify" else 0)


def test_the_readme_uses_no_deprecated_member() -> None:
    # It showed db.set_audit(True) and SpeakerDB.set_index_kind(...), which warn.
    from speakerdb._compat import OLD_MEMBERS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = "|".join(map(re.escape, OLD_MEMBERS))
    used = re.findall(rf"\b(?:db|database|SpeakerDB)\.(?:{names})\b", readme)
    assert not used, f"README.md shows deprecated members: {sorted(set(used))}"


def test_the_layout_names_the_package_as_it_is() -> None:
    """The README's Layout block names every module of ``speakerdb/`` and every folder
    two levels down, and nothing that is not there (it said ``types.py`` for the
    ``types/`` package, and left out ``_metadata.py``)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("\nLayout: `speakerdb/`", 1)[1].split("\n\n", 1)[1]
    block = after.split("\n\n", 1)[0]
    named = set(re.findall(r"(?<![\w/.-])(\w+(?:\.py|/))", block)) - {"speakerdb/"}
    package = ROOT / "speakerdb"
    there = {p.name for p in package.glob("*.py")}
    there |= {f"{d.name}/" for d in (*package.glob("*/"), *package.glob("*/*/"))}
    there -= {"__pycache__/"}
    every = {p.name for p in package.rglob("*.py")} | {f"{d.name}/" for d in package.rglob("*/")}
    assert there <= named, f"not in README's layout: {sorted(there - named)}"
    assert named <= every, f"README's layout names what is not there: {sorted(named - every)}"
