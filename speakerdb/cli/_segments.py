"""``speakerdb segments``: who spoke when in a recording, by name, as text, JSON or RTTM."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import (
    BackendOpt,
    DbOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    echo,
    examples,
    handles_errors,
    open_db,
    progress,
)
from ._membership import GroupOpt

if TYPE_CHECKING:
    from ..types import Segment

__all__ = ["register", "segments"]

#: The default of --max-duration: 4 hours.
MAX_DURATION_S = 4 * 3600.0


def register(app: typer.Typer) -> None:
    """Add ``speakerdb segments`` to the ``speakerdb`` app."""
    app.command(
        "segments",
        epilog=examples(
            "speakerdb segments meeting.wav",
            "speakerdb segments call.flac --rttm call.rttm --json",
        ),
    )(handles_errors(segments))


def segments(
    recording: Annotated[
        Path,
        typer.Argument(
            metavar="RECORDING", help="Audio file (WAV, FLAC, OGG, MP3).", show_default=False
        ),
    ],
    rttm: Annotated[
        Path | None,
        typer.Option(
            "--rttm",
            metavar="FILE",
            help="Also write the segments as RTTM to this file ('-': stdout).",
        ),
    ] = None,
    max_duration: Annotated[
        float,
        typer.Option("--max-duration", min=1.0, help="Longest recording accepted, in seconds."),
    ] = MAX_DURATION_S,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            metavar="T",
            help="Name a voice at score >= T (a cosine, unless --score-norm). [default: "
            "the model's voice threshold, 0.75 for resemblyzer: not identify's]",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    score_norm: Annotated[
        str | None,
        typer.Option(
            "--score-norm",
            metavar="NORM",
            help="'none' (cosine), 'margin', 'margin-duration' or 'asnorm'. [default: none: "
            "a voice is the mean of many windows, and the cosine names it best]",
            show_default=False,
        ),
    ] = None,
    group: GroupOpt = None,
    json: JsonOpt = False,
) -> None:
    """Say who speaks when in RECORDING, by name.

    Voices not enrolled are unknown-1, unknown-2... Long recordings (up to
    --max-duration, 4 hours by default) are read in blocks, in bounded memory,
    with a progress bar on a terminal. --json writes [{start, end, speaker, label, score,
    decision_score}]; --rttm writes RTTM (spaces in names as %20).
    """
    if json and str(rttm) == "-":
        from ..errors import InputError

        raise InputError("--json and --rttm - both write to stdout; give --rttm a file name")
    with (
        open_db(db, model, revision=revision, offline=offline, backend=backend) as database,
        progress(_duration(recording), "segments", unit="s") as advance,
    ):
        done = 0

        def step(seconds: float) -> None:
            nonlocal done
            advance(int(seconds) - done)
            done = int(seconds)

        found = database.segments(
            recording,
            threshold=threshold,
            score_norm=score_norm,
            max_duration_s=max_duration,
            progress=step,
            group=group,
        )
    if rttm is not None:
        _write_rttm(found, recording, rttm)
    if json:
        from ._render import emit_json

        emit_json([s.to_dict() for s in found])
    elif str(rttm) != "-":
        for segment in found:
            echo(_line(segment))
        if not found:
            # Silence, or speech too short for one window: say what would answer.
            echo(
                "no segments: no stretch of speech long enough to tell who speaks "
                "(a 1.6 s window); `speakerdb identify` names the speaker of a short clip"
            )


def _duration(recording: Path) -> int:
    """The recording's length in whole seconds, from its header (0 when it does not say)."""
    import soundfile as sf

    try:
        return max(0, int(sf.info(str(recording)).duration))
    except (RuntimeError, OSError, ValueError, TypeError):
        return 0  # the library names what is wrong with it


def _line(segment: Segment) -> str:
    from ._render import safe

    score = "" if segment.score is None else f"  {segment.score:.3f}"
    return f"{segment.start:9.2f} {segment.end:9.2f}  {safe(segment.label)}{score}"


def _write_rttm(found: list[Segment], recording: Path, out: Path) -> None:
    """RTTM to ``out`` (``-``: stdout), written whole or not at all."""
    from ..diarization import rttm_lines

    text = "".join(f"{line}\n" for line in rttm_lines(found, recording.stem))
    if str(out) == "-":
        typer.echo(text, nl=False)
        return
    from ..errors import InputError

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.resolve().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write RTTM to {out}: {exc.strerror or exc}") from exc
