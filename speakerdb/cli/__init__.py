"""The ``speakerdb`` command line: a thin client of the library (parse, call, render,
map errors to exit codes). ``run`` is the console entry point."""

from ._app import app, run

__all__ = ["app", "run"]
