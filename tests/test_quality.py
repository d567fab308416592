"""Enrollment quality gates: on crafted clips with the fake encoder, and on real voices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, read_rows, voice

import speakerdb.services._quality as gates
from speakerdb import EnrollmentRefused, QualityIssue, SpeakerDB
from speakerdb.audio import clip_from_array, load_clip
from speakerdb.decision import Population
from speakerdb.services import ManifestRow, check_enrollment

RATE = 16_000


def checks(issues) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {i.check: i.refused for i in issues}


def test_clipping_and_short_speech_are_refused() -> None:
    loud = np.clip(voice(150, 2.0) * 20, -1, 1)
    quiet = np.zeros(int(1.5 * RATE), dtype=np.float32)
    quiet[: int(0.3 * RATE)] = voice(150, 0.3)
    clips = [clip_from_array(loud, RATE, "loud.wav"), clip_from_array(quiet, RATE, "short.wav")]
    vectors = FakeEncoder().encode([c.samples for c in clips])
    issues = check_enrollment("x", clips, vectors, Population.from_groups({}), 0.75)
    found = {(i.check, i.source): i.refused for i in issues}
    assert found[("clipping", "loud.wav")] is True
    assert found[("speech", "short.wav")] is True
    message = next(i.message for i in issues if i.check == "speech")
    assert "0.5 s is needed" in message and "short.wav" in message


def test_similarity_checks_only_warn_for_an_unmeasured_model(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "q.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [(voice(120, seed=1), RATE), (voice(122, seed=2), RATE)])
        result = db.enroll("alicia", [(voice(121, seed=3), RATE)])
    assert checks(result.issues) == {"near_duplicate": False}
    assert "sounds nearly identical to 'alice'" in result.issues[0].message


def test_the_docs_name_every_check_an_issue_can_have() -> None:
    """QualityIssue's docstring and the gates' module list the same checks as the type
    of ``check`` (which mypy holds every QualityIssue the gates build to)."""
    names = set(get_args(get_type_hints(QualityIssue)["check"]))
    assert names == {"not_speech", "speech", "clipping", "outlier", "near_duplicate"}
    documented = (QualityIssue.__doc__ or "").split("``check`` is", 1)[1].split(";")[0]
    assert set(re.findall(r"``(\w+)``", documented)) == names
    assert set(re.findall(r"^- ``(\w+)``:", gates.__doc__ or "", re.M)) == names


# -- real voices (the shared corpus, offline GE2E encoder) -------------------


@pytest.fixture(scope="module")
def real(corpus: Path) -> dict[str, list[str]]:
    clips: dict[str, list[str]] = {}
    for name in ("enroll.csv", "test.csv"):
        for row in read_rows(corpus / "protocol" / name):
            if float(row["duration_s"]) >= 1.5:
                clips.setdefault(row["speaker_id"], []).append(row["path"])
    return clips


@pytest.fixture
def ge2e_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SpeakerDB(tmp_path / "real.db", model="resemblyzer") as db:
        yield db


@pytest.mark.slow
def test_real_clipped_clip_is_refused_and_force_overrides(ge2e_db, real, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clip = load_clip(real["asterisk-allison"][0])
    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(clip.samples * 30, -1, 1), RATE)
    with pytest.raises(
        EnrollmentRefused, match=r"clipped.*lower input gain.*force=True enrolls anyway"
    ):
        ge2e_db.enroll("allison", [clipped, *real["asterisk-allison"][1:3]])
    assert not ge2e_db.path.exists()  # refused: nothing written, not even the file
    result = ge2e_db.enroll("allison", [clipped, *real["asterisk-allison"][1:3]], force=True)
    assert checks(result.issues)["clipping"] is True
    assert len(result.added) == 3


@pytest.mark.slow
def test_real_clip_of_another_voice_is_an_outlier(ge2e_db, real) -> None:  # type: ignore[no-untyped-def]
    stranger = real["fillets-cs-big"][0]
    result = ge2e_db.enroll("allison", [*real["asterisk-allison"][:3], stranger], force=True)
    outliers = [i for i in result.issues if i.check == "outlier"]
    assert [i.source for i in outliers] == [stranger]
    assert "does not sound like the other clips of 'allison'" in outliers[0].message


@pytest.mark.slow
def test_same_real_voice_under_a_new_name_is_a_near_duplicate(ge2e_db, real) -> None:  # type: ignore[no-untyped-def]
    ge2e_db.enroll("allison", real["asterisk-allison"][:3])
    result = ge2e_db.enroll("allison-2", real["asterisk-allison"][3:6], force=True)
    assert "near_duplicate" in checks(result.issues)
    other = ge2e_db.enroll("ivr-ru", real["asterisk-ivrvoice-ru"][:3])
    assert "near_duplicate" not in checks(other.issues)


@pytest.mark.slow
def test_the_corpus_enrollments_pass_the_gates(ge2e_db, corpus) -> None:  # type: ignore[no-untyped-def]
    groups: dict[str, list[str]] = {}
    for row in read_rows(corpus / "protocol" / "enroll.csv"):
        groups.setdefault(row["speaker_id"], []).append(row["path"])
    for name, paths in groups.items():
        result = ge2e_db.enroll(name, paths)  # no refusal
        assert not any(i.refused for i in result.issues), result.issues


ONE_CLIP = (
    "'solo' is enrolled from one clip: its voiceprint is unsteady; enroll 3 or more clips, "
    "from different recordings"
)


def test_a_voiceprint_of_one_clip_comes_with_a_notice(tmp_path: Path) -> None:
    """The warning is part of the result (and its JSON), not only a log line."""
    with SpeakerDB(tmp_path / "q.db", encoder=FakeEncoder()) as db:
        one = db.enroll("solo", [(voice(130, seed=1), RATE)])
        assert one.notice == ONE_CLIP and one.to_dict()["notice"] == ONE_CLIP
        assert "one clip" not in " ".join(i.message for i in one.issues)
        assert db.enroll("solo", [(voice(130, seed=1), RATE)]).notice is None  # nothing added
        assert db.enroll("solo", [(voice(131, seed=2), RATE)]).notice is None  # two now
        three = [(voice(200, seed=s), RATE) for s in (3, 4, 5)]
        assert db.enroll("trio", three).notice is None
        sf.write(tmp_path / "duo.wav", voice(250, seed=6), RATE)
        (batched,) = db.enroll_batch([ManifestRow("duo", str(tmp_path / "duo.wav"), 2)]).enrollments
        assert batched.notice == ONE_CLIP.replace("'solo'", "'duo'")
