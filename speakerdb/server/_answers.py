"""The documents the endpoints answer 200 (or 201) with, for the OpenAPI description only:
the JSON of the library's results (:mod:`speakerdb.types`, ``to_dict``), so that a client
generated from ``/openapi.json`` (Go, TypeScript...) has typed fields, not ``any``.

The routes answer with ``to_dict`` itself; nothing here validates or reshapes an
answer. tests/test_server_curl.py checks real answers against these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Enrollment",
    "Identification",
    "Speaker",
    "SpeakerWithClips",
    "Verification",
]

OutcomeName = Literal["accepted", "rejected", "unknown", "not_enough_speech", "replay", "watchlist"]


class _Answer(BaseModel):
    # A field added to a result later is answered before it is described here.
    model_config = ConfigDict(extra="allow")


class DecisionPolicy(_Answer):
    score_norm: str = Field(description="The score that decided: none (cosine), margin, ...")
    threshold: float = Field(description="The bar the decision score was compared with.")
    source: str = Field(description="Where the threshold came from: argument, database, ...")
    top_n: int = Field(description="AS-norm's cohort size.")
    notice: str | None = Field(description="Why the score is not the database's own, if not.")
    duration_fall: float = Field(description="How far the bar falls with the words' length.")
    duration_s: float | None = Field(description="The words' length (s) the bar was set for.")


class Match(_Answer):
    speaker: str
    score: float = Field(description="The raw cosine.")
    normalized: float | None = Field(description="The normalised score, when one decides.")


class CountermeasureScore(_Answer):
    name: str
    score: float = Field(description="Higher: more likely live speech.")
    threshold: float
    spoof: bool = Field(description="A spoof is answered `replay`.")


class _Decision(_Answer):
    outcome: OutcomeName = Field(description="The answer; only `accepted` admits.")
    accepted: bool = Field(description="Whether `outcome` is `accepted`.")
    reason: str | None = Field(description="Why a check decided before the score, if one did.")
    source: str | None = Field(description="The clip's file name, if it had one.")
    threshold: float
    score_norm: str
    policy: DecisionPolicy
    countermeasure: CountermeasureScore | None
    group: str | None = Field(description="The group the query was confined to.")


class Verification(_Decision):
    speaker: str = Field(description="The speaker claimed.")
    score: float = Field(description="The raw cosine against the claimed speaker.")
    normalized: float | None = Field(
        description="The normalised score, when one decides: then it, not `score`, is "
        "compared with `threshold`."
    )


class Identification(_Decision):
    speaker: str | None = Field(description="The speaker identified; null for unknown.")
    best: Match | None = Field(description="The best candidate, accepted or not.")
    matches: list[Match] = Field(description="The top-k candidates, best first.")


class Speaker(_Answer):
    id: int
    name: str
    n_utterances: int
    created_at: str
    external_id: str | None
    attributes: dict[str, Any]
    expires_at: str | None
    watchlist: bool
    last_match_at: str | None
    groups: list[str]


class Utterance(_Answer):
    id: int
    speaker: str
    source: str | None = Field(description="The clip's file name, if it had one.")
    audio_sha256: str
    duration_s: float
    created_at: str
    spoken_margin_s: float | None = Field(
        description="Its vector is of its words and this much either side (s); null: of "
        "the whole clip (enrolled by an older speakerdb: `speakerdb reembed`)."
    )


class SpeakerWithClips(_Answer):
    speaker: Speaker
    utterances: list[Utterance]


class Enrollment(_Answer):
    speaker: Speaker
    added: list[Utterance]
    created: bool = Field(description="Whether the speaker is new (answered 201).")
    issues: list[Any] = Field(description="What the quality gates noted of the clips.")
    skipped: list[Any] = Field(description="Clips enrolled for this speaker already.")
    notice: str | None = Field(
        description="A warning about the voiceprint as a whole: that it rests on one clip."
    )
