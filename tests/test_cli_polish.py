"""Issue 17's rough edges, checked as a user meets them (mostly through the CLI).

The fixtures are test_cli.py's: ``home`` is a folder with ./speakers.db (alice: 2
clips, bob: 1) built with the tiny random x-vector model, and its clips.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import test_cli
from conftest import FakeEncoder, run_probed, voice
from test_cli import RUNNER, assert_error, cli, command_paths, ok, speakers, subprocess_env
from typer.testing import Result

from speakerdb import SpeakerDB, errors
from speakerdb.cli import _common, app
from speakerdb.services import read_manifest
from speakerdb.types import Match

# test_cli's fixtures, used here as they are there.
base_home, home, clip = test_cli.base_home, test_cli.home, test_cli.clip
clean_env, no_weight_loading_bars = test_cli.clean_env, test_cli.no_weight_loading_bars


def answering(answer: str, *args: object) -> Result:
    """``speakerdb ARGS`` with ``answer`` typed at its question."""
    return RUNNER.invoke(app, [str(a) for a in args], input=answer, catch_exceptions=False)


# -- 1. -v after the subcommand ----------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_flag_before_or_after_the_command(home: Path, where: str) -> None:
    args = ["identify", "alice1.wav"]
    args = ["-v", *args] if where == "before" else ["identify", "-v", "alice1.wav"]
    result = ok(cli(*args))
    assert "alice1.wav: alice" in result.stdout
    assert "speakerdb: " in result.stderr  # what -v logs
    assert ok(cli("identify", "alice1.wav")).stderr == ""


# -- 2. errors under --json ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["verify", "zoe", "alice1.wav"], "SpeakerNotFound"),
        (["show", "zoe"], "SpeakerNotFound"),
        (["enroll", "carol", "nowhere.wav"], "AudioError"),
        (["list", "--bogus"], "UsageError"),
        (["verify", "alice"], "UsageError"),  # a missing argument
        (["identify", "alice1.wav", "--top-k", "0"], "UsageError"),
        (["audit", "clear", "--bogus"], "UsageError"),
    ],
    ids=["verify", "show", "enroll", "unknown-option", "missing-argument", "bad-value", "group"],
)
def test_every_error_under_json_is_one_error_document(
    home: Path, args: list[str], kind: str
) -> None:
    result = cli(*args, "--json")
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["error"]
    assert document["error"]["type"] == kind
    assert kind == "UsageError" or issubclass(getattr(errors, kind), errors.SpeakerDBError)
    assert document["error"]["message"]
    # The one-line message still goes to stderr, as without --json.
    assert result.stderr.strip().startswith("speakerdb: error: ")


def test_usage_errors_without_json_are_clicks_own(home: Path) -> None:
    result = cli("list", "--bogus")
    assert result.exit_code == 2 and result.stdout == ""
    assert "No such option: --bogus" in result.stderr


# -- 3. names ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["verify", "alcie", "alice1.wav"], ["show", "alcie"]])
def test_a_misspelt_name_gets_a_suggestion(home: Path, command: list[str]) -> None:
    assert_error(cli(*command), "no speaker named 'alcie'", "did you mean 'alice'?")


def test_the_suggestion_comes_from_the_library(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as db:
        db.enroll("carlo", [(voice(140, seed=1), 16000)])
        with pytest.raises(errors.SpeakerNotFound, match="did you mean 'carlo'"):
            db.verify("carol", (voice(140, seed=2), 16000))
        with pytest.raises(errors.SpeakerNotFound, match=r"db\.speakers\(\) lists who is enrolled"):
            db.verify("xavier", (voice(140, seed=2), 16000))


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "alice1.wav", "alice"],
        ["enroll", "alice1.wav", "carol"],
        ["remove", "./bob1.wav"],
    ],
)
def test_a_file_in_a_name_position_says_the_arguments_look_swapped(
    home: Path, args: list[str]
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert "look swapped" in result.stderr
    assert speakers() == {"alice": 2, "bob": 1}


# -- 4. confirmation ---------------------------------------------------------------


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "stdin_is_terminal", lambda: True)


def test_remove_asks_on_a_terminal(home: Path, terminal: None) -> None:
    declined = answering("n\n", "remove", "bob")
    assert declined.exit_code == 1
    assert "Delete bob" in declined.stderr and "nothing was changed" in declined.stderr
    assert "bob" in speakers()
    ok(answering("y\n", "remove", "bob"))
    assert "bob" not in speakers()


def test_yes_and_scripts_are_not_asked(home: Path, terminal: None) -> None:
    result = ok(cli("remove", "bob", "--yes"))
    assert "Delete" not in result.output
    assert "bob" not in speakers()


def test_without_a_terminal_nothing_is_asked(home: Path) -> None:
    result = ok(cli("remove", "bob"))  # CliRunner's stdin is no terminal, like a script's
    assert "Delete" not in result.output
    assert "bob" not in speakers()


def test_audit_clear_asks_on_a_terminal(home: Path, terminal: None) -> None:
    ok(cli("audit", "on"))
    ok(cli("identify", "alice1.wav"))
    assert answering("n\n", "audit", "clear").exit_code == 1
    assert len(json.loads(cli("audit", "show", "--json").stdout)["entries"]) == 1
    assert "deleted 1" in ok(cli("audit", "clear", "-y")).stdout


# -- 5. enroll skips what the speaker has already ------------------------------


def test_enroll_skips_clips_enrolled_for_the_same_speaker(
    home: Path, clip: Callable[..., Path]
) -> None:
    new = clip("alice3.wav", 122, seed=9)
    result = ok(cli("enroll", "alice", "alice1.wav", new))
    assert "skipped alice1.wav: enrolled for alice already" in result.stdout
    assert "+1 clip(s)" in result.stdout
    assert speakers()["alice"] == 3
    again = json.loads(ok(cli("enroll", "alice", "alice1.wav", new, "--json")).stdout)
    assert again["added"] == [] and again["created"] is False
    assert again["skipped"] == ["alice1.wav", str(new)]
    assert again["speaker"]["n_utterances"] == 3
    assert "nothing to do" in ok(cli("enroll", "alice", new)).stdout
    assert speakers()["alice"] == 3


def test_enroll_still_refuses_another_speakers_clip(home: Path, clip: Callable[..., Path]) -> None:
    new = clip("carol1.wav", 150, seed=11)
    assert_error(cli("enroll", "alice", new, "bob1.wav"), "bob1.wav", "'bob'")
    assert speakers() == {"alice": 2, "bob": 1}  # all or nothing: new was not enrolled


# -- 6. enroll-batch progress --------------------------------------------------


def test_batch_progress_advances_as_each_speaker_is_embedded(tmp_path: Path) -> None:
    rows = ["speaker,path"]
    for k in range(3):
        for s in range(2):
            sf.write(tmp_path / f"s{k}-{s}.wav", voice(110 + 60 * k, seed=10 * k + s), 16000)
            rows.append(f"s{k},s{k}-{s}.wav")
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    encoder = FakeEncoder()
    seen: list[tuple[int, int]] = []  # (clips done, speakers embedded by then)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        seen.append((done, encoder.calls))

    with SpeakerDB(tmp_path / "b.db", encoder=encoder) as db:
        db.enroll_batch(read_manifest(tmp_path / "people.csv"), advance, force=True)
    # One speaker's clips at a time, while the work goes on, not all at the last commit.
    assert seen == [(2, 1), (4, 2), (6, 3)]


def test_progress_bar_shows_rate_and_time_left() -> None:
    import io
    import time

    from rich.console import Console
    from rich.progress import Progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with Progress(*_common.progress_columns("clips"), console=console) as bar:
        task = bar.add_task("enrolling", total=10)
        for _ in range(4):
            time.sleep(0.05)
            bar.advance(task, 1)
        bar.refresh()
    text = out.getvalue()
    assert "4/10" in text
    assert re.search(r"\d+\.\d clips/s", text), text
    assert re.search(r"\d:\d\d:\d\d", text), text  # time left


# -- 7. DET plot ---------------------------------------------------------------


def test_det_plot_marks_eer_and_threshold_and_says_when_there_are_no_errors() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from speakerdb.decision._metrics import det_curve
    from speakerdb.evaluation._plot import draw_det

    figure, axes = plt.subplots()
    try:
        draw_det(axes, {"all": det_curve([0.9, 0.95], [0.1, 0.2])}, threshold=0.5)
        labels = [t.get_text() for t in axes.get_legend().get_texts()]
        notes = [t.get_text() for t in axes.texts]
    finally:
        plt.close(figure)
    assert any(label.startswith("EER 0.0%") for label in labels)
    assert "threshold 0.500" in labels
    assert any("no errors" in note for note in notes)


def test_det_plot_with_errors_has_no_such_note() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from speakerdb.decision._metrics import det_curve
    from speakerdb.evaluation._plot import draw_det

    figure, axes = plt.subplots()
    try:
        draw_det(axes, {"all": det_curve([0.3, 0.9], [0.1, 0.5])}, threshold=None)
        assert len(axes.texts) == 0
    finally:
        plt.close(figure)


# -- 8. help ---------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_has_examples(path: tuple[str, ...]) -> None:
    text = ok(cli(*path, "--help")).stdout
    assert "Examples:" in text
    assert f"speakerdb {' '.join(path)}" in text.split("Examples:", 1)[1]


def test_top_level_summaries_fit_uncut() -> None:
    text = ok(cli("--help", env={"COLUMNS": "80"})).stdout
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands, commands
    assert max(map(len, commands.splitlines())) <= 80


# -- 10. docs ------------------------------------------------------------------


def test_match_docstring_names_every_normalised_score() -> None:
    doc = Match.__doc__ or ""
    assert "margin-duration" in doc and "asnorm" in doc


# -- 12. completion -----------------------------------------------------------------


def _complete(home: Path, words: str) -> tuple[list[str], set[str]]:
    env = subprocess_env(
        _SPEAKERDB_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - 1),
    )
    proc, code, loaded = run_probed([], cwd=home, env=env)
    assert code in (0, None), proc.stderr
    return proc.stdout.split(), loaded


def test_completion_of_commands_and_speaker_names(home: Path) -> None:
    assert _complete(home, "speakerdb ver")[0] == ["verify"]
    names, loaded = _complete(home, "speakerdb verify al")
    assert names == ["alice"]
    # Read through the fast reader: no numpy, no SQLAlchemy at every <TAB>.
    assert not loaded & {"numpy", "sqlalchemy", "torch", "faiss"}, loaded
    assert _complete(home, "speakerdb show --db nowhere.db al")[0] == []


def test_install_completion_is_offered() -> None:
    assert "--install-completion" in ok(cli("--help")).stdout


def test_names_are_completed_in_process(home: Path) -> None:
    assert sorted(np.unique(_common.complete_names(_Ctx(), ""))) == ["alice", "bob"]


class _Ctx:
    params: dict[str, object] = {}  # noqa: RUF012 (a stand-in for click's context)
