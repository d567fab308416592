"""``python -m speakerdb``: the same as the ``speakerdb`` command."""

from speakerdb.cli import run

run()
