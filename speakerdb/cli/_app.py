"""The ``speakerdb`` command line: parse, call the library, render, map errors to exit codes.

Exit codes: 0 success (for ``verify``: accepted), 1 a negative answer or partial
failure (``verify`` rejected or a replay, some ``enroll-batch`` or ``identify``
clips failed), 2 an error (bad input, unknown speaker, unusable database or
model), 3 not enough speech to decide (``verify``; ``identify`` when every clip).
An outcome (:class:`~speakerdb.types.Outcome`) is an answer, never an error.

This module holds the app, its global options and the order of its commands; each
command lives in the module of its concept.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from ._accuracy import register as register_accuracy
from ._audit import audit_app
from ._cohort import cohort_app
from ._decide import register as register_decide
from ._enroll import register as register_enroll
from ._group import SpeakerdbGroup, log_to_stderr
from ._index import register as register_index
from ._keys import key_app
from ._lifecycle import register as register_lifecycle
from ._maintenance import register as register_maintenance
from ._membership import group_app
from ._model import register as register_model
from ._reembed import register as register_reembed
from ._roster import register as register_roster
from ._segments import register as register_segments
from ._serve import register as register_serve

app = typer.Typer(
    name="speakerdb",
    help="Enroll speakers from audio clips, then identify or verify who is speaking.",
    cls=SpeakerdbGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"speakerdb {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Enroll speakers from audio clips, then identify or verify who is speaking."""
    # The CLI owns the terminal: no download or weight-loading bars from HF libraries.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    log_to_stderr(logging.DEBUG if verbose else logging.WARNING)


def run() -> None:
    """Console-script entry point."""
    # Named, so that `python -m speakerdb` completes as `speakerdb` does.
    app(prog_name="speakerdb")


# Commands in modules of their own, registered in the order `--help` lists them.
register_enroll(app)
register_decide(app)
register_roster(app)
register_segments(app)
register_maintenance(app)
register_index(app)
register_lifecycle(app)
register_reembed(app)
app.add_typer(audit_app, name="audit")
app.add_typer(key_app, name="key")
app.add_typer(group_app, name="group")
app.add_typer(cohort_app, name="cohort")
register_serve(app)
register_accuracy(app)
register_model(app)
