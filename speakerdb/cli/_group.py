"""The click group behind the ``speakerdb`` app: what holds for every command at once.

- ``-v``/``--verbose`` is accepted after the subcommand too (``speakerdb identify -v
  clip.wav``), not only before it: the option is added to every command here, so no
  command has to declare it.
- Under ``--json``, a usage error (an unknown option, a missing argument) is the same
  ``{"error": {"type": "UsageError", "message": ...}}`` document on stdout as a library
  error, with click's exit code (2); the one-line message goes to stderr as usual.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

# typer (0.28 and later) runs on its own copy of click: its classes, not click's, are
# the ones a typer app raises and builds.
from typer import Exit
from typer._click import Command, Context, Parameter
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperGroup, TyperOption

__all__ = ["SpeakerdbGroup", "log_to_stderr", "wants_json"]


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so it works when embedded or tested."""

    def emit(self, record: logging.LogRecord) -> None:
        from ._render import safe

        text = safe(record.getMessage())
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        sys.stderr.write(f"speakerdb: {text}\n")


def log_to_stderr(level: int) -> None:
    """Send speakerdb's log records at ``level`` and above to stderr."""
    # Only speakerdb's own logger: the host application's logging is left alone.
    logger = logging.getLogger("speakerdb")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _StderrHandler)]
    logger.addHandler(_StderrHandler())
    logger.setLevel(level)
    # Hub retries and transformers notices are noise on a terminal unless asked for.
    for noisy in ("huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(level if level <= logging.DEBUG else logging.ERROR)


def _verbose(ctx: Context, param: Parameter, value: bool) -> None:
    # The group's callback (which sets the default level) has run by the time a
    # subcommand's options are parsed, so this only ever raises the level.
    if value:
        log_to_stderr(logging.DEBUG)


def _verbose_option() -> TyperOption:
    return TyperOption(
        param_decls=["--verbose", "-v"],
        is_flag=True,
        expose_value=False,
        callback=_verbose,
        help="Log what happens (also accepted before the command).",
    )


def _leaf_commands(group: TyperGroup) -> list[Command]:
    leaves: list[Command] = []
    for command in group.commands.values():
        if isinstance(command, TyperGroup):
            leaves += _leaf_commands(command)
        else:
            leaves.append(command)
    return leaves


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options of ``args`` (not after a ``--``)."""
    args = list(args)
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def _json_failure(exc: ClickException) -> Exit:
    from ._common import report_error

    kind = "UsageError" if isinstance(exc, UsageError) else type(exc).__name__
    report_error(exc.format_message(), kind, as_json=True)
    return Exit(exc.exit_code)


class SpeakerdbGroup(TyperGroup):
    """The top-level group: ``-v`` on every command, usage errors as JSON under ``--json``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in _leaf_commands(self):
            if not any(p.name == "verbose" for p in command.params):
                command.params.append(_verbose_option())

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        as_json = wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except ClickException as exc:
            if not as_json:
                raise
            raise _json_failure(exc) from None
        ctx.meta["speakerdb.json"] = as_json
        return ctx

    def invoke(self, ctx: Context) -> Any:
        # Subcommands parse their arguments in here, so their usage errors land here too.
        try:
            return super().invoke(ctx)
        except ClickException as exc:
            if not ctx.meta.get("speakerdb.json"):
                raise
            raise _json_failure(exc) from None
