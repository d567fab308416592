"""Re-embedding with the database's own model (:mod:`speakerdb.services._reembed`): a
speaker whose every clip was embedded from its words already, and whose audio was not
kept, is copied into the new database as they are, vectors and all, instead of being
told to enroll again: the same model would give the same vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..audio._decode import SAMPLE_RATE, Clip
from ._enroll_commit import record_encoder

if TYPE_CHECKING:
    from ..storage import Storage
    from ..types import EncoderInfo, Speaker, Utterance

__all__ = ["copy_speaker", "up_to_date"]


def up_to_date(utterances: list[Utterance]) -> bool:
    """Whether every one of ``utterances`` was embedded from its words (none whole)."""
    return bool(utterances) and all(u.spoken_margin_s is not None for u in utterances)


def copy_speaker(source: Storage, target: Storage, info: EncoderInfo, speaker: Speaker) -> int:
    """Enroll ``speaker`` in ``target`` from their vectors in ``source`` (both of the model
    ``info``), with their metadata and watchlist mark; return how many clips."""
    with source.read() as snapshot:
        utterances = snapshot.utterances(speaker.name)
        vectors = snapshot.population([speaker.name]).embeddings
    with target.change(templates=True) as change:
        record_encoder(target, change, info)
        change.enroll(speaker.name, [_stored(u) for u in utterances], vectors)
        change.set_metadata(
            speaker.name, speaker.external_id, speaker.attributes, speaker.expires_at
        )
        if speaker.watchlist:
            change.set_watchlist(speaker.name, True)
    return len(utterances)


def _stored(utterance: Utterance) -> Clip:
    # Storage keeps a clip's provenance, length and margin, never its samples: a
    # zero-copy view of the stored length stands in for them (as an archive's import).
    samples = np.broadcast_to(np.float32(0.0), (round(utterance.duration_s * SAMPLE_RATE),))
    return Clip(
        samples, utterance.source, utterance.audio_sha256, spoken_margin_s=utterance.spoken_margin_s
    )
