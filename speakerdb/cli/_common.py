"""What every ``speakerdb`` command shares: its options, exit codes, error handling
and the way it opens the database. Nothing here imports torch, transformers or faiss.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

if TYPE_CHECKING:
    from .._facade import SpeakerDB
    from ..storage import Reader

__all__ = [
    "EXIT_ERROR",
    "EXIT_NEGATIVE",
    "EXIT_NOT_ENOUGH_SPEECH",
    "BackendOpt",
    "ClipsArg",
    "DbOpt",
    "ForceOpt",
    "JsonOpt",
    "ModelOpt",
    "OfflineOpt",
    "RevisionOpt",
    "ScoreNormOpt",
    "ThresholdOpt",
    "YesOpt",
    "complete_names",
    "confirm",
    "echo",
    "examples",
    "handles_errors",
    "name_arg",
    "not_a_path",
    "open_db",
    "open_for_reading",
    "progress",
    "report_error",
]

EXIT_NEGATIVE = 1
EXIT_ERROR = 2
#: ``verify``'s clip (or every ``identify`` clip) held too little speech to decide.
EXIT_NOT_ENOUGH_SPEECH = 3
#: 128 + SIGPIPE, as a shell reports a command whose reader went away.
EXIT_BROKEN_PIPE = 141

DbOpt = Annotated[
    Optional[str],
    typer.Option(
        "--db",
        metavar="DB",
        help="Database file, or a PostgreSQL URL (postgresql://USER@HOST/DB). "
        "[env SPEAKERDB_DB; default ./speakers.db]",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        metavar="MODEL",
        help="Hub id, local model folder, or 'resemblyzer'. [env SPEAKERDB_MODEL; default: the "
        "database's model, else microsoft/unispeech-sat-base-plus-sv]",
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    Optional[str],
    typer.Option("--revision", metavar="REV", help="Hub revision (branch, tag or commit)."),
]
BackendOpt = Annotated[
    Optional[str],
    typer.Option(
        "--backend",
        metavar="BACKEND",
        help="How an x-vector model runs: auto (ONNX Runtime, else torch), onnx, torch, "
        "openvino-bf16 (the fast path, needs speakerdb[fast]) or torch-bf16. "
        "[env SPEAKERDB_BACKEND; default auto]",
        show_default=False,
    ),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never touch the network; use the HF cache only.")
]
ThresholdOpt = Annotated[
    Optional[float],
    typer.Option(
        "--threshold",
        metavar="T",
        help="Accept at score >= T, T a threshold of the score that decides (--score-norm, "
        "else the database's choice; a database that never chose decides by raw cosine "
        "then). [env SPEAKERDB_THRESHOLD; else the database's threshold for this command; "
        "else the model's default]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Enroll even what the quality gates refuse.")
]
ScoreNormOpt = Annotated[
    Optional[str],
    typer.Option(
        "--score-norm",
        metavar="NORM",
        help="'none' (cosine), 'margin', 'margin-duration' or 'asnorm'. [default: the "
        "database's setting (`speakerdb score-norm`); else the model's: margin-duration for "
        "resemblyzer, none for others]",
        show_default=False,
    ),
]
ClipsArg = Annotated[
    list[Path], typer.Argument(metavar="CLIP...", help="Audio files (WAV, FLAC, OGG, MP3).")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")
]
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")


def complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a speaker name: the enrolled names that start as typed.

    Runs at every <TAB>, so it reads through the fast reader (no numpy, no SQLAlchemy)
    and stays silent on any problem: a completion must never print an error.
    """
    from ..config import database_location
    from ..storage import enrolled_names

    try:
        names = enrolled_names(database_location(ctx.params.get("db")))
    except Exception:
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def not_a_path(value: str) -> str:
    """Refuse, in a speaker-name position, what is plainly an existing audio file: the
    arguments were most likely given in the wrong order."""
    looks_like_path = "/" in value or value.lower().endswith(_AUDIO_SUFFIXES)
    if looks_like_path and Path(value).exists():
        raise typer.BadParameter(
            f"{value!r} is a file, not a speaker name: the arguments look swapped "
            "(the speaker's name comes first)"
        )
    return value


def name_arg(help_text: str, metavar: str = "NAME") -> Any:
    """A speaker-name argument: completed from the database, never an existing file."""
    return typer.Argument(
        metavar=metavar, help=help_text, callback=not_a_path, autocompletion=complete_names
    )


def confirm(question: str, yes: bool, as_json: bool = False) -> None:
    """Ask ``question`` when stdin is a terminal (and ``--yes`` was not given); a no ends
    the command with exit 1 and nothing changed. Scripts (no terminal) are never asked."""
    if yes or not stdin_is_terminal():
        return
    if not typer.confirm(question, default=False, err=True):
        raise _fail("not confirmed; nothing was changed", EXIT_NEGATIVE, "Aborted", as_json)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


F = TypeVar("F", bound=Callable[..., Any])


def report_error(message: str, kind: str, as_json: bool, fix: dict[str, Any] | None = None) -> None:
    """The one-line message on stderr and, under ``--json``, the error document on stdout
    (the shape of :func:`speakerdb.errors.error_document`, which a service answers with;
    ``fix``, the error's fix spelled for this CLI, when it names one)."""
    from ._render import emit_json, safe

    if as_json:
        error = {"type": kind, "message": " ".join(message.splitlines())}
        emit_json({"error": error if fix is None else {**error, "fix": fix}})
    typer.echo(f"speakerdb: error: {safe(message)}", err=True)


def _fail(
    message: str,
    code: int = EXIT_ERROR,
    kind: str = "",
    as_json: bool = False,
    fix: dict[str, Any] | None = None,
) -> typer.Exit:
    report_error(message, kind, as_json, fix)
    return typer.Exit(code)


def handles_errors(func: F) -> F:
    """Turn library errors into a one-line message and the error's own exit code
    (:attr:`~speakerdb.errors.SpeakerDBError.exit_code`), never a traceback; under
    ``--json`` the error is also the JSON document on stdout."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import SpeakerDBError, error_document
        from ._fixes import CLI_FIXES

        as_json = bool(kwargs.get("json"))
        try:
            return func(*args, **kwargs)
        except SpeakerDBError as exc:
            error = error_document(exc, CLI_FIXES)["error"]
            kind, fix = error["type"], error.get("fix")
            raise _fail(error["message"], exc.exit_code, kind, as_json, fix) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130, "KeyboardInterrupt", as_json) from None
        except BrokenPipeError:
            # The reader went away (`speakerdb list | head`): stop quietly, but never
            # with 0, which would read as "accepted" for verify.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            logging.getLogger("speakerdb").debug("unexpected error", exc_info=True)
            message = f"unexpected {type(exc).__name__}: {exc} (run with -v for details)"
            raise _fail(message, EXIT_ERROR, type(exc).__name__, as_json) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def open_db(
    db: str | None,
    model: str | None = None,
    revision: str | None = None,
    offline: bool = False,
    create: bool = False,
    backend: str | None = None,
    audio_key: str | None = None,
) -> Iterator[SpeakerDB]:
    """Open the database; only enrolling commands may create it (a mistyped --db is an error)."""
    from .._facade import SpeakerDB

    with SpeakerDB(
        db,
        model=model,
        revision=revision,
        local_files_only=True if offline else None,
        create=create,
        backend=backend,
        audio_key=audio_key,
    ) as database:
        try:
            yield database
        except BaseException:
            database.close(discard_if_empty=True)
            raise


@contextmanager
def open_for_reading(db: str | None) -> Iterator[Reader | SpeakerDB]:
    """For commands that only look: the fast reader (:func:`speakerdb.storage.open_reader`)
    when it can answer, else the database itself (which also gives the errors that name
    the fix)."""
    from ..config import database_location
    from ..storage import open_reader, require_file

    location = database_location(db)
    reader = open_reader(location)
    if reader is None:
        # A missing file is refused before SpeakerDB loads SQLAlchemy and numpy (0.6 s of CPU).
        require_file(location)
        with open_db(db) as database:
            yield database
        return
    with reader:
        yield reader


def examples(*lines: str) -> str:
    """A command's ``--help`` epilog: example command lines, kept as written."""
    # "\b" stops click from re-wrapping the paragraph into one line.
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def echo(text: str) -> None:
    typer.echo(text)


@contextmanager
def progress(total: int, label: str, unit: str = "clips") -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal (done/total, rate, time left);
    silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(*progress_columns(unit), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def progress_columns(unit: str) -> tuple[Any, ...]:
    """What the bar shows: label, bar, percentage, done/total, rate, time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        _rate_column(unit),
        TimeRemainingColumn(),
    )


def _rate_column(unit: str) -> Any:
    """A rich column with the rate, e.g. ``3.2 clips/s`` (blank until there is one)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f} {unit}/s")

    return Rate()
