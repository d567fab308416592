"""``speakerdb model export``: a model's portable ONNX export, for machines without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import JsonOpt, OfflineOpt, RevisionOpt, echo, examples, handles_errors

__all__ = ["export", "register"]


def register(app: typer.Typer) -> None:
    """Add the ``model`` group, with ``speakerdb model export``, to the ``speakerdb`` app."""
    model_app = typer.Typer(help="Export a model for machines without torch.", no_args_is_help=True)
    model_app.command(
        "export",
        epilog=examples(
            "speakerdb model export microsoft/unispeech-sat-base-plus-sv ./usat-onnx",
            "speakerdb model export resemblyzer ./ge2e-onnx --json",
        ),
    )(handles_errors(export))
    app.add_typer(model_app, name="model")


def export(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Hub id, local model folder, or 'resemblyzer'.")
    ],
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="New folder to write the export to.", show_default=False
        ),
    ],
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    json: JsonOpt = False,
) -> None:
    """Write MODEL's portable ONNX export to a new folder.

    Another machine loads OUT with --model OUT, without torch; databases built
    with MODEL accept it. Needs speakerdb[export] unless MODEL's export is cached.
    """
    from ..encoders import export_model

    info = export_model(model, out, revision=revision, local_files_only=offline or None)
    if json:
        from ._render import emit_json

        emit_json({"out": str(out), "encoder": info})
    else:
        revision_text = f"@{info.revision}" if info.revision else ""
        echo(f"exported {info.model}{revision_text} ({info.dim}-d) to {out}; use --model {out}")
