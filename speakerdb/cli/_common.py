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
    from ..storage.sqlite._reader import Reader

__all__ = [
    "EXIT_ERROR",
    "EXIT_NEGATIVE",
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
    "echo",
    "handles_errors",
    "open_db",
    "open_for_reading",
    "progress",
]

EXIT_NEGATIVE = 1
EXIT_ERROR = 2
#: 128 + SIGPIPE, as a shell reports a command whose reader went away.
EXIT_BROKEN_PIPE = 141

DbOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--db", help="Database file. [env SPEAKERDB_DB; default ./speakers.db]", show_default=False
    ),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="Hub id, local model folder, or 'resemblyzer'. [env SPEAKERDB_MODEL; default: the "
        "database's model, else microsoft/unispeech-sat-base-plus-sv]",
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    Optional[str], typer.Option("--revision", help="Hub revision (branch, tag or commit).")
]
BackendOpt = Annotated[
    Optional[str],
    typer.Option(
        "--backend",
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
        help="Accept at score >= T: a cosine (and raw cosine decides), unless --score-norm "
        "or the database chose another score, whose threshold T then is. "
        "[env SPEAKERDB_THRESHOLD; else the database's; else the model's default]",
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
        help="'none' (cosine), 'margin', 'margin-duration' or 'asnorm'. [default: the "
        "database's setting (`speakerdb score-norm`); else the model's: margin-duration for "
        "resemblyzer, none for others]",
        show_default=False,
    ),
]
ClipsArg = Annotated[list[Path], typer.Argument(help="Audio files (WAV, FLAC, OGG, MP3).")]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    from ._render import safe

    typer.echo(f"speakerdb: error: {safe(message)}", err=True)
    return typer.Exit(code)


def handles_errors(func: F) -> F:
    """Turn library errors into a one-line message and the error's own exit code
    (:attr:`~speakerdb.errors.SpeakerDBError.exit_code`), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import SpeakerDBError

        try:
            return func(*args, **kwargs)
        except SpeakerDBError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except BrokenPipeError:
            # The reader went away (`speakerdb list | head`): stop quietly, but never
            # with 0, which would read as "accepted" for verify.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            logging.getLogger("speakerdb").debug("unexpected error", exc_info=True)
            raise _fail(
                f"unexpected {type(exc).__name__}: {exc} (run with -v for details)"
            ) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def open_db(
    db: Path | None,
    model: str | None = None,
    revision: str | None = None,
    offline: bool = False,
    create: bool = False,
    backend: str | None = None,
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
    ) as database:
        try:
            yield database
        except BaseException:
            database.close(discard_if_empty=True)
            raise


@contextmanager
def open_for_reading(db: Path | None) -> Iterator[Reader | SpeakerDB]:
    """For commands that only look: the fast :mod:`~speakerdb.storage.sqlite._reader` when it
    can answer, else the database itself (which also gives the errors that name the fix)."""
    from ..config import database_path
    from ..storage.sqlite._reader import open_reader

    reader = open_reader(database_path(db))
    if reader is None:
        with open_db(db) as database:
            yield database
        return
    with reader:
        yield reader


def echo(text: str) -> None:
    typer.echo(text)


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
