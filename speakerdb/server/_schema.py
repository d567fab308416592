"""The error document in the OpenAPI description: what every error answer holds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ERROR_RESPONSES"]


class ErrorFix(BaseModel):
    code: str | None = Field(
        description="The fix's stable code (list_speakers, list_groups, force, threshold, "
        "clear_opt_out, audit_off, replay_window_off); null for an operator's fix that has "
        "none."
    )
    args: dict[str, str] = Field(
        default_factory=dict,
        description="What the fix is about, as the code's arguments: `name` (force, "
        "clear_opt_out), `group` (list_groups), `external_id` (clear_opt_out); else empty.",
    )
    by: Literal["client", "operator"] = Field(
        description="Whose fix it is: the client's (change the request) or the server's "
        "operator's (on the server: the database, the model, groups, opt-outs)."
    )
    hint: str | None = Field(description="The fix, spelled for a client of this service.")


class ErrorBody(BaseModel):
    type: str = Field(description="The error's class in speakerdb.errors: SpeakerNotFound, ...")
    message: str = Field(description="One line: the problem and its fix.")
    fix: ErrorFix | None = Field(
        default=None,
        description="Present when the error names a fix, or the fix is the operator's.",
    )


class ErrorDocument(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorDocument, "description": "The request cannot be answered as sent."},
    "5XX": {"model": ErrorDocument, "description": "The server cannot answer now."},
}
