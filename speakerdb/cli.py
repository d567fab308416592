"""The ``speakerdb`` command line: parse, call the library, render, map errors to exit codes.

Exit codes: 0 success (for ``verify``: accepted), 1 a negative answer or partial
failure (``verify`` rejected, some ``enroll-batch`` or ``identify`` clips
failed), 2 an error (bad input, unknown speaker, unusable database or model).
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
    from .batch import BatchReport
    from .service import SpeakerDB

EXIT_NEGATIVE = 1
EXIT_ERROR = 2

app = typer.Typer(
    name="speakerdb",
    help="Enroll speakers from audio clips, then identify or verify who is speaking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

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
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never touch the network; use the HF cache only.")
]
ThresholdOpt = Annotated[
    Optional[float],
    typer.Option(
        "--threshold",
        help="Accept at cosine >= T. [env SPEAKERDB_THRESHOLD; else the database's; else the "
        "model's default]",
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
        help="'none' (cosine), 'margin' or 'asnorm'. [default: the database's setting "
        "(`speakerdb score-norm`)]",
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
    """Turn library errors into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import SpeakerDBError

        try:
            return func(*args, **kwargs)
        except SpeakerDBError as exc:
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
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
    threshold: float | None = None,
    revision: str | None = None,
    offline: bool = False,
    create: bool = False,
) -> Iterator[SpeakerDB]:
    """Open the database; only enrolling commands may create it (a mistyped --db is an error)."""
    from .service import SpeakerDB

    with SpeakerDB(
        db,
        model=model,
        threshold=threshold,
        revision=revision,
        local_files_only=True if offline else None,
        create=create,
    ) as database:
        yield database


def _echo(text: str) -> None:
    typer.echo(text)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so it works when embedded or tested."""

    def emit(self, record: logging.LogRecord) -> None:
        from ._render import safe

        text = safe(record.getMessage())
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        sys.stderr.write(f"speakerdb: {text}\n")


def _log_to_stderr(level: int) -> None:
    # Only speakerdb's own logger: the host application's logging is left alone.
    logger = logging.getLogger("speakerdb")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _StderrHandler)]
    logger.addHandler(_StderrHandler())
    logger.setLevel(level)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Enroll speakers from audio clips, then identify or verify who is speaking."""
    if version:
        from . import __version__

        typer.echo(f"speakerdb {__version__}")
        raise typer.Exit(0)
    # The CLI owns the terminal: no download or weight-loading bars from HF libraries.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    _log_to_stderr(logging.DEBUG if verbose else logging.WARNING)


@app.command()
@handles_errors
def enroll(
    name: Annotated[str, typer.Argument(help="Speaker name; created if new.")],
    clips: ClipsArg,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Enroll NAME from CLIPs (all of them, or none), or add the clips to NAME."""
    from ._render import emit_json, safe

    with open_db(db, model, revision=revision, offline=offline, create=True) as database:
        result = database.enroll(name, clips, force=force)
    for issue in result.issues:
        kind = "enrolled despite" if issue.refused else "warning"
        typer.echo(f"speakerdb: {kind}: {safe(issue.message)}", err=True)
    if json:
        emit_json(result)
        return
    verb = "created" if result.created else "updated"
    _echo(
        f"{verb} {safe(result.speaker.name)}: +{len(result.added)} clip(s), "
        f"{result.speaker.n_utterances} in all"
    )


@app.command("enroll-batch")
@handles_errors
def enroll_batch(
    manifest: Annotated[Path, typer.Argument(help="CSV with 'speaker' and 'path' columns.")],
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Enroll many speakers from a CSV manifest; failed clips are reported, not fatal."""
    from ._render import emit_json
    from .batch import enroll_batch as run_batch
    from .batch import read_manifest

    rows = read_manifest(manifest)
    with open_db(db, model, revision=revision, offline=offline, create=True) as database:
        with _progress(len(rows), "enrolling") as advance:
            report = run_batch(database, rows, advance, force=force)
    if json:
        emit_json(report)
    else:
        _echo(_batch_summary(report))
    if report.failures:
        raise typer.Exit(EXIT_NEGATIVE if report.enrollments else EXIT_ERROR)


def _batch_summary(report: BatchReport) -> str:
    from ._render import safe

    lines = [f"failed: {safe(f.source)}: {safe(f.reason)}" for f in report.failures]
    created = sum(e.created for e in report.enrollments)
    lines.append(
        f"enrolled {report.n_enrolled} clip(s) for {len(report.enrollments)} speaker(s) "
        f"({created} new); {len(report.failures)} clip(s) failed"
    )
    return "\n".join(lines)


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@app.command()
@handles_errors
def identify(
    clips: ClipsArg,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Candidates to list.")] = 5,
    threshold: ThresholdOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    score_norm: ScoreNormOpt = None,
    json: JsonOpt = False,
) -> None:
    """Say who speaks in each CLIP, or 'unknown' below the threshold."""
    from ._render import emit_json, identification_text, safe, to_jsonable
    from .errors import AudioError

    results: list[Any] = []
    failed = 0
    with open_db(db, model, threshold, revision, offline) as database:
        for clip in clips:
            try:
                result = database.identify(clip, top_k=top_k, score_norm=score_norm)
            except AudioError as exc:
                failed += 1
                results.append({"source": str(clip), "error": str(exc)})
                if not json:
                    typer.echo(f"speakerdb: error: {safe(exc)}", err=True)
                continue
            results.append(to_jsonable(result))
            if not json:
                _echo(identification_text(result))
    if json:
        emit_json(results)
    if failed:
        raise typer.Exit(EXIT_ERROR if failed == len(clips) else EXIT_NEGATIVE)


@app.command()
@handles_errors
def verify(
    name: Annotated[str, typer.Argument(help="The claimed speaker.")],
    clip: Annotated[Path, typer.Argument(help="Audio file.")],
    threshold: ThresholdOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    score_norm: ScoreNormOpt = None,
    json: JsonOpt = False,
) -> None:
    """Accept (exit 0) or reject (exit 1) the claim that CLIP is NAME; errors exit 2."""
    from ._render import emit_json, verification_text

    with open_db(db, model, threshold, revision, offline) as database:
        result = database.verify(name, clip, score_norm=score_norm)
    if json:
        emit_json(result)
    else:
        _echo(verification_text(result))
    if not result.accepted:
        raise typer.Exit(EXIT_NEGATIVE)


@app.command("list")
@handles_errors
def list_speakers(db: DbOpt = None, json: JsonOpt = False) -> None:
    """List the enrolled speakers."""
    from ._render import emit_json, speaker_line

    with open_db(db) as database:
        speakers = database.speakers()
    if json:
        emit_json(speakers)
        return
    for speaker in speakers:
        _echo(speaker_line(speaker))
    if not speakers:
        typer.echo("no speakers enrolled; add one with `speakerdb enroll NAME CLIP...`", err=True)


@app.command()
@handles_errors
def show(
    name: Annotated[str, typer.Argument(help="Speaker name.")],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a speaker and their enrolled clips."""
    from ._render import emit_json, speaker_line, utterance_line

    with open_db(db) as database:
        speaker = database.speaker(name)
        utterances = database.utterances(name)
    if json:
        emit_json({"speaker": speaker, "utterances": utterances})
        return
    _echo("\n".join([speaker_line(speaker), *map(utterance_line, utterances)]))


@app.command()
@handles_errors
def rename(
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rename speaker OLD to NEW."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        speaker = database.rename(old, new)
    if json:
        emit_json(speaker)
    else:
        _echo(f"renamed {safe(old)} to {safe(speaker.name)}")


@app.command()
@handles_errors
def remove(
    name: Annotated[str, typer.Argument(help="Speaker to delete with all their clips.")],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delete a speaker, their clips and embeddings, from the database and the index."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        speaker = database.remove(name)
    if json:
        emit_json(speaker)
    else:
        _echo(f"removed {safe(speaker.name)} ({speaker.n_utterances} clip(s))")


@app.command("remove-utterance")
@handles_errors
def remove_utterance(
    utterance_id: Annotated[
        int, typer.Argument(metavar="ID", help="Clip number, as `speakerdb show NAME` lists it.")
    ],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delete one enrolled clip and its embedding, and recompute the speaker's voiceprint."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        speaker = database.remove_utterance(utterance_id)
    if json:
        emit_json(speaker)
    else:
        _echo(
            f"removed clip #{utterance_id} of {safe(speaker.name)} "
            f"({speaker.n_utterances} left; voiceprint recomputed)"
        )


@app.command()
@handles_errors
def info(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Show the database's path, model, threshold, counts, schema and index state."""
    from ._render import emit_json, info_text

    with open_db(db) as database:
        result = database.info()
    if json:
        emit_json(result)
    else:
        _echo(info_text(result))


@app.command("set-threshold")
@handles_errors
def set_threshold(
    value: Annotated[float, typer.Argument(help="Cosine in [-1, 1] to store in the database.")],
    score_norm: Annotated[
        str,
        typer.Option("--score-norm", help="Whose threshold: 'none' (cosine), 'margin', 'asnorm'."),
    ] = "none",
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Store the database's decision threshold (used when --threshold is not given)."""
    from ._render import emit_json

    with open_db(db) as database:
        stored = database.set_threshold(value, score_norm=score_norm)
    if json:
        emit_json({"threshold": stored})
    else:
        _echo(f"threshold set to {stored:.4f}")


@app.command("rebuild-index")
@handles_errors
def rebuild_index(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Rebuild the FAISS index file from the database."""
    from ._render import emit_json

    with open_db(db) as database:
        count = database.rebuild_index()
        path = database.index_path
    if json:
        emit_json({"index": str(path), "speakers": count})
    else:
        from ._render import safe

        _echo(f"rebuilt {safe(path)} with {count} speaker(s)")


@db_app.command("upgrade")
@handles_errors
def db_upgrade(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Migrate the database schema to this version of speakerdb (back it up first)."""
    from ._render import emit_json
    from .service import SpeakerDB

    before, after = SpeakerDB.upgrade(db)
    if json:
        emit_json({"from": before, "to": after})
    elif before == after:
        _echo(f"already at schema revision {after}")
    else:
        _echo(f"upgraded schema from {before} to {after}")


def run() -> None:
    """Console-script entry point."""
    app()


# Command groups in modules of their own; they use the helpers above.
from ._cli_audit import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")

from ._cli_accuracy import register as _register_accuracy  # noqa: E402

_register_accuracy(app)
