"""``speakerdb evaluate``, ``calibrate`` and ``score-norm`` as a user runs them.

The encoder is the fast fake one (the CLI's model loader is patched); the
audio is real files written to a temporary folder, listed in CSV files with
relative paths, as the shared corpus's protocol files are.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from typer.testing import CliRunner, Result

from speakerdb.cli import app
from speakerdb.evaluation import _plot
from speakerdb.services import _model as service

# Six voices: calibration needs at least 6 stranger voices (MIN_VOICES).
PITCHES = {"ann": 100, "ben": 150, "cat": 220, "dan": 330, "eve": 125, "fay": 270}
IMPOSTOR = 480


def run(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(service, "load_encoder", lambda model, **kwargs: FakeEncoder())
    monkeypatch.chdir(tmp_path)  # no ./speakers.db but a test's own
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """clips/ with 3 enrollment and 3 test clips per speaker and 3 of an impostor; CSVs."""
    clips = tmp_path / "clips"
    clips.mkdir()
    enroll, test, trials = [], [], []

    def write(name: str, pitch: float, seed: int) -> str:
        sf.write(clips / name, voice(pitch * (1 + 0.01 * (seed % 5)), seed=seed), 16000)
        return f"clips/{name}"

    for k, (speaker, pitch) in enumerate(PITCHES.items()):
        enroll += [[speaker, write(f"{speaker}-e{s}.wav", pitch, 10 * k + s)] for s in range(3)]
        for s in range(3):
            path = write(f"{speaker}-t{s}.wav", pitch, 100 + 10 * k + s)
            test.append([path, speaker])
            trials += [[speaker, path, 1], ["ann" if speaker != "ann" else "ben", path, 0]]
    test += [[write(f"zed-t{s}.wav", IMPOSTOR, 500 + s), "zed"] for s in range(3)]
    write_csv(tmp_path / "enroll.csv", ["speaker", "path"], enroll)
    write_csv(tmp_path / "test.csv", ["path", "speaker_id"], test)
    write_csv(tmp_path / "trials.csv", ["enroll_speaker", "test_path", "target"], trials)
    return tmp_path


def evaluate_json(data: Path, *extra: object) -> dict:  # type: ignore[type-arg]
    result = run(
        "evaluate",
        "--enroll",
        data / "enroll.csv",
        "--test",
        data / "test.csv",
        "--model",
        "fake-encoder",
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one document


def test_evaluate_reports_every_figure(data: Path) -> None:
    report = evaluate_json(data)
    assert (report["n_speakers"], report["n_enroll_clips"]) == (6, 18)
    assert (report["n_test_items"], report["n_impostor_items"]) == (21, 3)
    verification = report["verification"]
    assert verification["n_target"] == 18 and verification["n_nontarget"] == 18
    for key in ("eer", "min_dcf_01", "min_dcf_05"):
        assert 0.0 <= verification[key] <= 1.0
    assert 0.0 <= report["top1"] <= report["top5"] <= 1.0
    names = [point["name"] for point in report["open_set"]]
    assert names == ["database", "calibrated"]
    for point in report["open_set"]:
        result = point["result"]
        assert result["correct"] + result["wrong"] <= 1.0
        assert 0.0 <= result["impostors_accepted"] <= 1.0
    assert report["calibration"]["n_genuine"] == 18
    assert set(report["margins"]) == {"correct", "wrong", "impostor"}


def test_evaluate_with_a_trial_list_and_text_output(data: Path) -> None:
    report = evaluate_json(data, "--trials", data / "trials.csv")
    assert report["verification"]["n_target"] == 18
    text = run(
        "evaluate",
        "--enroll",
        data / "enroll.csv",
        "--test",
        data / "test.csv",
        "--model",
        "fake-encoder",
    )
    assert text.exit_code == 0, text.output
    for fragment in ("EER", "minDCF(0.01)", "top-1", "impostors accepted", "margin"):
        assert fragment in text.stdout


def test_evaluate_with_score_normalisation(data: Path) -> None:
    assert evaluate_json(data, "--score-norm", "margin")["score"] == "margin"
    assert evaluate_json(data, "--score-norm", "asnorm")["score"] == "asnorm"


def test_evaluate_never_touches_the_users_database(data: Path) -> None:
    db = data / "mine.db"
    clip = data / "clips" / "ann-e0.wav"
    assert run("enroll", "solo", clip, "--db", db, "--model", "fake-encoder").exit_code == 0
    run("set-threshold", "0.42", "--db", db)
    before = db.read_bytes()
    report = evaluate_json(data, "--db", db)
    assert report["open_set"][0]["result"]["threshold"] == 0.42
    assert db.read_bytes() == before


def test_evaluate_reads_the_database_from_the_environment(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = data / "env.db"
    clip = data / "clips" / "ann-e0.wav"
    assert run("enroll", "solo", clip, "--db", db, "--model", "fake-encoder").exit_code == 0
    run("set-threshold", "0.43", "--db", db)
    monkeypatch.setenv("SPEAKERDB_DB", str(db))
    assert evaluate_json(data)["open_set"][0]["result"]["threshold"] == 0.43


def test_evaluate_reads_speakers_db_in_the_working_directory(data: Path) -> None:
    # As every later command does: a user who enrolled here with --model resemblyzer
    # was told the default model could not be loaded.
    clip = data / "clips" / "ann-e0.wav"
    assert run("enroll", "solo", clip, "--model", "fake-encoder").exit_code == 0
    run("set-threshold", "0.44")
    before = (data / "speakers.db").read_bytes()
    result = run("evaluate", "--enroll", data / "enroll.csv", "--test", data / "test.csv", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["open_set"][0]["result"]["threshold"] == 0.44
    assert (data / "speakers.db").read_bytes() == before
    # A --model of its own evaluates that model, whatever ./speakers.db holds.
    assert evaluate_json(data)["open_set"][0]["result"]["threshold"] != 0.44


def test_a_model_in_the_environment_is_evaluated_as_one_on_the_command_line(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SPEAKERDB_MODEL asks for a model as --model does: ./speakers.db (another model's)
    # is not read, or its threshold would be reported for this model's scores.
    clip = data / "clips" / "ann-e0.wav"
    assert run("enroll", "solo", clip, "--model", "fake-encoder").exit_code == 0
    run("set-threshold", "0.44")
    monkeypatch.setenv("SPEAKERDB_MODEL", "resemblyzer")
    result = run("evaluate", "--enroll", data / "enroll.csv", "--test", data / "test.csv", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "resemblyzer"
    assert report["open_set"][0]["result"]["threshold"] != 0.44


def test_evaluate_on_a_database_takes_a_threshold_as_identify_does(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakerdb.encoders import _registry

    class MarginByDefault(_registry.XVectorFamily):
        default_score = "margin"

        def claims(self, model: str) -> bool:
            return model == "fake-encoder"

    # A model whose default score is normalised, on a database that never chose one:
    # a --threshold alone is a cosine, for evaluate --db as for identify.
    monkeypatch.setattr(_registry, "FAMILIES", (MarginByDefault(), *_registry.FAMILIES))
    db = data / "norm.db"
    clip = data / "clips" / "ann-e0.wav"
    assert run("enroll", "solo", clip, "--db", db, "--model", "fake-encoder").exit_code == 0
    assert evaluate_json(data, "--db", db)["score"] == "margin"
    report = evaluate_json(data, "--db", db, "--threshold", "0.5")
    assert report["score"] == "cosine"
    assert report["open_set"][0]["result"]["threshold"] == 0.5
    answer = run("identify", clip, "--db", db, "--threshold", "0.5", "--json")
    identified = json.loads(answer.stdout)
    assert identified[0]["score_norm"] in (None, "none")


def test_det_plot_is_written(data: Path) -> None:
    pytest.importorskip("matplotlib")
    report = evaluate_json(data, "--det", data / "det.png")
    assert report["det_plot"] == str(data / "det.png")
    assert (data / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_det_plot_without_matplotlib_says_how_to_install(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_plot, "_have_matplotlib", lambda: False)
    result = run(
        "evaluate", "--enroll", data / "enroll.csv", "--test", data / "test.csv", "--det", "x.png"
    )
    assert result.exit_code == 2
    assert "pip install 'speakerdb[plot]'" in result.stderr


def test_bad_csv_is_a_one_line_error(data: Path) -> None:
    bad = write_csv(data / "bad.csv", ["file", "who"], [["a.wav", "x"]])
    result = run(
        "evaluate", "--enroll", bad, "--test", data / "test.csv", "--model", "fake-encoder"
    )
    assert result.exit_code == 2
    assert "'speaker' and a 'path' column" in result.stderr


def _enrolled_db(data: Path) -> Path:
    db = data / "cal.db"
    result = run(
        "enroll-batch", data / "enroll.csv", "--db", db, "--model", "fake-encoder", "--force"
    )
    assert result.exit_code == 0, result.output
    return db


def test_calibrate_from_enrollments(data: Path) -> None:
    db = _enrolled_db(data)
    dry = run("calibrate", "--db", db, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["stored"] is False
    stored = run("calibrate", "--db", db, "--json")
    calibration = json.loads(stored.stdout)["calibration"]
    identify, verify = calibration["identify"], calibration["verify"]
    assert calibration["n_genuine"] == 18 and identify["target"] == verify["target"] == 0.01
    # Each of 6 speakers' 3 clips plays the stranger against the other 5; verify has one
    # impostor score per clip and other speaker.
    assert (identify["n_strangers"], identify["n_speakers"]) == (18, 6)
    assert (verify["n_strangers"], verify["n_speakers"]) == (90, 1)
    info = json.loads(run("info", "--db", db, "--json").stdout)
    for operation, chosen in (("identify", identify), ("verify", verify)):
        shown = info["thresholds"][operation]
        assert shown["value"] == pytest.approx(chosen["threshold"])
        assert shown["source"] == "database"
    text = run("calibrate", "--db", db).stdout
    assert "at most 1.0% of strangers" in text and "genuine clips turned away" in text
    assert "identify " in text and "verify " in text and "95% confidence" in text


def test_calibrate_with_too_few_voices_keeps_the_default(data: Path) -> None:
    """Fewer than 6 stranger voices cannot bound strangers: the measured default stays,
    unstored, and the message says how to calibrate (the old calibration refused)."""
    db = data / "small.db"
    for speaker in ("ann", "ben", "cat"):
        clips = [data / "clips" / f"{speaker}-e{s}.wav" for s in range(3)]
        enrolled = run("enroll", speaker, *clips, "--db", db, "--model", "fake-encoder", "--force")
        assert enrolled.exit_code == 0, enrolled.output
    result = run("calibrate", "--db", db, "--target-far", "0.01", "--json")
    assert result.exit_code == 0, result.output
    calibration = json.loads(result.stdout)["calibration"]
    assert calibration["identify"]["method"] == "default"
    assert "import a cohort of outside voices (speakerdb cohort import CSV)" in result.stderr
    info = json.loads(run("info", "--db", db, "--json").stdout)
    assert info["threshold_source"].startswith("default")


def test_calibrate_from_trials(data: Path) -> None:
    db = _enrolled_db(data)
    result = run("calibrate", "--db", db, "--trials", data / "trials.csv", "--json")
    assert result.exit_code == 0, result.output
    calibration = json.loads(result.stdout)["calibration"]
    assert calibration["verify"]["n_strangers"] == 18  # the non-target trials
    assert calibration["identify"]["n_speakers"] == 6
    assert calibration["identify"]["threshold"] >= calibration["verify"]["threshold"]


def test_score_norm_command(data: Path) -> None:
    db = _enrolled_db(data)
    result = json.loads(run("score-norm", "margin", "--db", db, "--json").stdout)
    assert result["score_norm"] == "margin"
    identified = json.loads(
        run("identify", data / "clips" / "ann-t0.wav", "--db", db, "--json").stdout
    )
    assert identified[0]["best"]["normalized"] is not None
    assert run("score-norm", "zscore", "--db", db).exit_code == 2
    assert np.isfinite(identified[0]["threshold"])


def test_enroll_reports_quality_findings_and_force_overrides_a_refusal(data: Path) -> None:
    db = data / "gates.db"
    clips = data / "clips"
    sf.write(clips / "loud.wav", np.clip(voice(100, seed=1) * 20, -1, 1), 16000)
    refused = run("enroll", "ann", clips / "loud.wav", "--db", db, "--model", "fake-encoder")
    assert refused.exit_code == 2
    assert "clipped" in refused.stderr and "--force" in refused.stderr
    forced = run(
        "enroll", "ann", clips / "loud.wav", "--db", db, "--model", "fake-encoder", "--force"
    )
    assert forced.exit_code == 0, forced.output
    assert "enrolled despite" in forced.stderr
    twin = run("enroll", "ann-2", clips / "ann-e1.wav", "--db", db, "--json")
    assert twin.exit_code == 0, twin.output
    issues = json.loads(twin.stdout)["issues"]
    assert [i["check"] for i in issues] == ["near_duplicate"]
    assert "warning: new speaker 'ann-2' sounds nearly identical" in twin.stderr


def test_calibrate_from_trials_names_the_speakers_it_could_not_find(data: Path) -> None:
    db = _enrolled_db(data)
    rows = [["zoe", "clips/ann-t0.wav", 1], ["yan", "clips/ben-t0.wav", 0]]
    trials = write_csv(data / "strangers.csv", ["enroll_speaker", "test_path", "target"], rows)
    result = run("calibrate", "--db", db, "--trials", trials)
    assert result.exit_code == 2
    assert "no usable trial on an enrolled speaker (not enrolled: 'yan', 'zoe')" in result.stderr


def test_evaluate_decides_each_clip_at_the_bar_identify_gives_it(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With GE2E's defaults identify's bar falls with the clip's duration; evaluate's
    open-set figures at the database threshold count what identify answers, clip by
    clip (one flat 0.5 s bar identified 13 of these 18 clips, identify 16), and say
    that the bar falls."""
    from speakerdb import SpeakerDB
    from speakerdb.encoders._registry import family_of

    ge2e = "resemblyzer"  # the fake encoder under this name gets GE2E's defaults
    monkeypatch.setattr(service, "load_encoder", lambda model, **kw: FakeEncoder(model=ge2e))
    test_rows = list(csv.DictReader((data / "test.csv").open()))
    for k, row in enumerate(test_rows):  # clips of 1-8 s: bars from 1 s's to 8 s's
        pitch = PITCHES.get(row["speaker_id"], IMPOSTOR) * 1.01
        sf.write(data / row["path"], voice(pitch, seconds=1 + k % 8, seed=900 + k), 16000)
    report = evaluate_json(data, "--model", ge2e)
    at_database = report["open_set"][0]["result"]
    fall = family_of(ge2e).identify_curves["margin-duration"].fall
    assert (report["score"], at_database["duration_fall"]) == ("margin-duration", fall)

    with SpeakerDB(data / "same.db", encoder=FakeEncoder(model=ge2e)) as db:  # type: ignore[arg-type]
        enroll: dict[str, list[Path]] = {}
        for row in csv.DictReader((data / "enroll.csv").open()):
            enroll.setdefault(row["speaker"], []).append(data / row["path"])
        for name, paths in enroll.items():
            db.enroll(name, paths, force=True)
        answers = [(row, db.identify(data / row["path"])) for row in test_rows]
    genuine = [a for row, a in answers if row["speaker_id"] in PITCHES]
    strangers = [a for row, a in answers if row["speaker_id"] not in PITCHES]
    right = [a for row, a in answers if a.speaker == row["speaker_id"]]
    assert {a.policy.threshold for _, a in answers} != {at_database["threshold"]}
    assert at_database["correct"] == pytest.approx(len(right) / len(genuine))
    named = [a for a in strangers if a.speaker is not None]
    assert at_database["impostors_accepted"] == pytest.approx(len(named) / len(strangers))
    evaluate = ("evaluate", "--enroll", data / "enroll.csv", "--test", data / "test.csv")
    text = run(*evaluate, "--model", ge2e).stdout
    assert f"falling {fall:g} x ln(d / 0.5 s)" in text
