"""``speakerdb segments`` as a user runs it: real speech from the shared corpus, the
offline GE2E encoder, text, ``--json`` and ``--rttm`` output, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import read_rows
from typer.testing import CliRunner, Result

from speakerdb.audio import load_clip
from speakerdb.cli import app

RUNNER = CliRunner()
ENROLLED = ("asterisk-allison", "fillets-nl-big")
STRANGER = "asterisk-armelle-fr"
RATE = 16_000


def cli(*args: object) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def scene(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """A database with two enrolled speakers (from the protocol's enrollment clips) and a
    conversation (other clips) in which they and a stranger take turns."""
    home = tmp_path_factory.mktemp("segments")
    db = home / "speakers.db"
    enroll = read_rows(corpus / "protocol" / "enroll.csv")
    for name in ENROLLED:
        clips = [row["path"] for row in enroll if row["speaker_id"] == name]
        result = cli("enroll", name, *clips, "--db", db, "--model", "resemblyzer")
        assert result.exit_code == 0, result.output
    used = {row["path"] for row in enroll}
    test = [r for r in read_rows(corpus / "protocol" / "test.csv") if r["path"] not in used]
    order = [ENROLLED[0], ENROLLED[1], STRANGER, ENROLLED[0], STRANGER, ENROLLED[1]]
    parts, truth, t = [np.zeros(RATE // 2, np.float32)], [], 0.5
    for turn, who in enumerate(order):
        rows = [r for r in test if r["speaker_id"] == who and "silence__" not in r["path"]]
        audio = np.concatenate([load_clip(r["path"]).samples for r in rows[turn * 3 :][:3]])
        audio = audio[: 7 * RATE]
        parts += [audio, np.zeros(RATE, np.float32)]
        truth.append((t, t + len(audio) / RATE, who))
        t += len(audio) / RATE + 1.0
    noise = np.random.default_rng(0).normal(0, 1e-3, sum(len(p) for p in parts))
    recording = home / "meeting room.wav"
    sf.write(recording, np.concatenate(parts) + noise.astype(np.float32), RATE)
    return db, recording, truth


def label_of_turn(segments: list[dict], start: float, end: float) -> str:
    """The label that covers most of a reference turn."""
    cover: dict[str, float] = {}
    for s in segments:
        cover[s["label"]] = cover.get(s["label"], 0.0) + max(
            0.0, min(end, s["end"]) - max(start, s["start"])
        )
    return max(cover, key=cover.__getitem__)


def test_segments_names_who_spoke_when_as_json_and_rttm(scene: tuple, tmp_path: Path) -> None:
    db, recording, truth = scene
    rttm = tmp_path / "out.rttm"
    result = cli("segments", recording, "--db", db, "--json", "--rttm", rttm)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert all(
        set(s) == {"start", "end", "speaker", "label", "score", "decision_score"} for s in found
    )
    expected = {ENROLLED[0]: ENROLLED[0], ENROLLED[1]: ENROLLED[1], STRANGER: "unknown-1"}
    assert [label_of_turn(found, a, b) for a, b, _ in truth] == [expected[w] for *_, w in truth]
    for s in found:
        assert (s["speaker"] is None) == s["label"].startswith("unknown-")
    lines = rttm.read_text().splitlines()
    assert len(lines) == len(found)
    for line, s in zip(lines, found, strict=True):
        fields = line.split(" ")
        assert fields[:3] == ["SPEAKER", "meeting%20room", "1"]
        assert float(fields[3]) == pytest.approx(s["start"], abs=1e-3)
        assert float(fields[4]) == pytest.approx(s["end"] - s["start"], abs=2e-3)
        assert fields[5:7] == ["<NA>", "<NA>"] and fields[8:] == ["<NA>", "<NA>"]
        assert fields[7] == s["label"]


def test_segments_text_output_and_rttm_to_stdout(scene: tuple) -> None:
    db, recording, _ = scene
    text = cli("segments", recording, "--db", db)
    assert text.exit_code == 0, text.output
    assert ENROLLED[0] in text.stdout and "unknown-1" in text.stdout
    rttm = cli("segments", recording, "--db", db, "--rttm", "-")
    assert rttm.exit_code == 0, rttm.output
    assert all(line.startswith("SPEAKER meeting%20room 1 ") for line in rttm.stdout.splitlines())


def test_segments_refuses_a_recording_beyond_max_duration(scene: tuple) -> None:
    db, recording, _ = scene
    result = cli("segments", recording, "--db", db, "--max-duration", 10)
    assert result.exit_code == 2
    assert "longer than 10 s" in result.stderr and "--max-duration" in result.stderr


def test_enroll_refuses_a_name_reserved_for_strangers(scene: tuple, corpus: Path) -> None:
    db, _, _ = scene
    clip = read_rows(corpus / "protocol" / "enroll.csv")[0]["path"]
    result = cli("enroll", "unknown-1", clip, "--db", db)
    assert result.exit_code == 2
    assert "reserved" in result.stderr


@pytest.mark.parametrize("seconds", [1.0, 1.7])
def test_a_recording_of_a_second_or_two_is_answered(
    scene: tuple, tmp_path: Path, seconds: float
) -> None:
    # Real speech shorter than a clean window failed with "unexpected IndexError".
    db, recording, _ = scene
    samples, rate = sf.read(recording, dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, samples[rate // 2 : rate // 2 + int(seconds * rate)], rate)
    result = cli("segments", short, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {s["label"] for s in found} <= {ENROLLED[0], "unknown-1"}
    if seconds < 1.6:  # shorter than one window: nothing to place, and the text says why
        assert found == []
        text = cli("segments", short, "--db", db).stdout
        assert "no segments" in text and "speakerdb identify" in text


def test_a_recording_shorter_than_a_window_names_no_one(scene: tuple, tmp_path: Path) -> None:
    """A 0.35 s recording, all speech, is no stretch of speech as long as a window: no
    segments, as for 1 s. Its one window was measured against the recording's own length,
    not the window's, so it counted as clean and was named."""
    db, recording, truth = scene
    samples, rate = sf.read(recording, dtype="float32")
    length, frame = int(0.35 * rate), int(0.03 * rate)

    def quietest_frame(onset: int) -> float:  # high: every 30 ms of the cut is speech
        frames = samples[onset : onset + length // frame * frame].reshape(-1, frame)
        return float(np.sqrt((frames**2).mean(axis=1)).min())

    first, last = (int(t * rate) for t in truth[0][:2])  # the first enrolled speaker's turn
    onset = max(range(first, last - length, frame), key=quietest_frame)
    short = tmp_path / "short.wav"
    sf.write(short, samples[onset : onset + length], rate)
    result = cli("segments", short, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
