"""What ``info`` shows of a database, from what its storage says of itself.

Shared by :class:`~speakerdb.SpeakerDB` (through :mod:`speakerdb.services._settings`)
and the fast reader of SQLite files (:mod:`speakerdb.storage.sqlite._reader`). The
storage describes where it is and its search index (:meth:`Storage.describe`):
a file beside a database, a pgvector table or a cache in memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..config import resolve_replay_window
from ..types import DatabaseInfo, DecisionPolicy, EncoderInfo, StoredThreshold, Threshold

if TYPE_CHECKING:
    from ..decision._policy import PolicySources
    from ._protocol import StoreDescription

__all__ = ["describe_database", "whole_clip_notice"]


def describe_database(
    where: StoreDescription,
    encoder: EncoderInfo | None,
    counts: tuple[int, int],
    sources: PolicySources,
    whole_clip: int = 0,
) -> DatabaseInfo:
    """``info`` of the database ``where`` describes (at the head schema revision), with
    ``counts`` of speakers and utterances, deciding by the policies of ``sources``, and
    ``whole_clip`` speakers with voiceprints of whole clips."""
    from ..decision._policy import OPERATIONS, resolve_policy
    from ..decision._scores import get_norm
    from .sql._schema import SCHEMA_HEAD

    sources = replace(sources, n_speakers=counts[0])
    policies = {op: resolve_policy(sources, operation=op) for op in OPERATIONS}
    policy = policies["identify"]
    deciding_by_cosine = get_norm(policy.score_norm).decides_by_cosine
    window, window_source = resolve_replay_window(None, sources.stored.replay_window_s)
    return DatabaseInfo(
        path=where.location,
        encoder=encoder,
        threshold=policy.threshold,
        threshold_source=policy.source,
        n_speakers=counts[0],
        n_utterances=counts[1],
        schema_revision=SCHEMA_HEAD,
        index_path=where.search,
        index_state=where.index_state,
        score_norm=policy.score_norm,
        score_norm_threshold=None if deciding_by_cosine else policy.threshold,
        thresholds={
            op: Threshold(p.score_norm, p.threshold, p.source, p.duration_fall)
            for op, p in policies.items()
        },
        stored_thresholds=_stored_thresholds(sources, policies),
        notice=policy.notice,
        replay_window_s=window,
        replay_window_source=window_source,
        n_whole_clip_speakers=whole_clip,
        whole_clip_notice=whole_clip_notice(whole_clip, encoder),
    )


def whole_clip_notice(speakers: int, encoder: EncoderInfo | None) -> str | None:
    """What to do about ``speakers`` whose voiceprints an older speakerdb embedded from
    whole clips (``None`` when there are none): the one text ``info`` and the warning on
    opening give."""
    if not speakers:
        return None
    model = encoder.model if encoder is not None else "MODEL"
    return (
        f"{speakers} speaker(s) have voiceprints embedded from whole clips by an older "
        "speakerdb, while queries are embedded from their words: identify may miss them "
        "when their enrollment clips had silence around the words; `speakerdb reembed "
        "--in-place` (in this database) or `speakerdb reembed --to NEW.db --to-model "
        f"{model}` (a new file) embeds again those enrolled with --keep-audio (and lists "
        "the others, to enroll again)"
    )


def _stored_thresholds(
    sources: PolicySources, policies: dict[str, DecisionPolicy]
) -> tuple[StoredThreshold, ...]:
    """Every stored threshold, and whether an operation decides by it now."""
    from .._stored import BOTH

    own = sources.stored.operation_thresholds

    def decides(row: str, score: str) -> bool:
        # An operation reads its own threshold of a score, else the one stored for both.
        return any(
            policy.source == "database"
            and policy.score_norm == score
            and row == (op if (op, score) in own else BOTH)
            for op, policy in policies.items()
        )

    return tuple(
        StoredThreshold(row, score, value, decides(row, score))
        for row, score, value in sources.stored.stored_thresholds()
    )
