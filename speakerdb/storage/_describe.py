"""What ``info`` shows of a database, from what its storage says of itself.

Shared by :class:`~speakerdb.SpeakerDB` (through :mod:`speakerdb.services._settings`)
and the fast reader of SQLite files (:mod:`speakerdb.storage.sqlite._reader`). The
storage describes where it is and its search index (:meth:`Storage.describe`):
a file beside a database, a pgvector table or a cache in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..types import DatabaseInfo, EncoderInfo

if TYPE_CHECKING:
    from ..decision._policy import PolicySources
    from ._protocol import StoreDescription

__all__ = ["describe_database"]


def describe_database(
    where: StoreDescription,
    encoder: EncoderInfo | None,
    counts: tuple[int, int],
    sources: PolicySources,
) -> DatabaseInfo:
    """``info`` of the database ``where`` describes (at the head schema revision), with
    ``counts`` of speakers and utterances, deciding by the policy of ``sources``."""
    from ..decision._policy import resolve_policy
    from ..decision._scores import get_norm
    from .sqlite._schema import SCHEMA_HEAD

    threshold, source = sources.cosine_threshold()
    policy = resolve_policy(sources)
    deciding_by_cosine = get_norm(policy.score_norm).decides_by_cosine
    return DatabaseInfo(
        path=where.location,
        encoder=encoder,
        threshold=threshold,
        threshold_source=source,
        n_speakers=counts[0],
        n_utterances=counts[1],
        schema_revision=SCHEMA_HEAD,
        index_path=where.search,
        index_state=where.index_state,
        score_norm=policy.score_norm,
        score_norm_threshold=None if deciding_by_cosine else policy.threshold,
    )
