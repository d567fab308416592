"""The quality gates of an enrollment being prepared (:mod:`speakerdb.services._quality`
says what each gate checks): at which threshold, against which speakers, and whether
their findings refuse it.

The gates look only at what they need: the speaker's own enrolled clips and, for a new
speaker, the clips of the closest enrolled speaker (found through the index) and of the
speakers about to be enrolled with it, so they never read every enrolled utterance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._vectors import template_of
from ..audio._decode import Clip
from ..decision._population import Population
from ..encoders._registry import family_of
from ..errors import EnrollmentRefused, Fix
from ..types import QualityIssue

if TYPE_CHECKING:
    from ..storage import Storage
    from ._model import ModelSlot
    from ._settings import Settings

__all__ = ["Gates"]

log = logging.getLogger(__name__)


class Gates:
    """The quality gates of enrollments into one database."""

    def __init__(self, storage: Storage, slot: ModelSlot, settings: Settings) -> None:
        self._storage = storage
        self._slot = slot
        self._settings = settings

    def check(
        self,
        name: str,
        clips: Sequence[Clip],
        embeddings: np.ndarray,
        pending: Mapping[str, np.ndarray],
        *,
        force: bool,
        speech_gate: bool,
    ) -> tuple[QualityIssue, ...]:
        """The gates' findings on ``name``'s new ``clips`` (``pending``: the embeddings
        of each speaker about to be enrolled with it). Raises :class:`EnrollmentRefused`
        when one refuses, unless ``force``; ``speech_gate=False`` skips ``not_speech``."""
        from ._quality import check_enrollment

        chosen = self._settings.cosine_choice()
        threshold, model = chosen.value, self._slot.model
        # A default nobody measured for this model is too rough for the gates to refuse by.
        measured_default = family_of(model).measured_threshold(model) is not None
        measured = not chosen.builtin_default or measured_default
        if chosen.builtin_default:
            # The gates' limits were measured on the family's cosine scale, not on the
            # (stricter) decision default.
            threshold = family_of(model).threshold(model)
        population = self._population(name, embeddings, pending)
        issues = check_enrollment(
            name,
            clips,
            embeddings,
            population,
            threshold,
            similarity_refuses=measured,
            speech_gate=speech_gate,
        )
        refusals = [i.message for i in issues if i.refused]
        if refusals and not force:
            raise EnrollmentRefused("; ".join(refusals), tuple(issues), fix=Fix.FORCE, name=name)
        for issue in issues:
            log.info("enrollment quality: %s", issue.message)
        return tuple(issues)

    def _population(
        self, name: str, embeddings: np.ndarray, pending: Mapping[str, np.ndarray]
    ) -> Population:
        """What the quality gates compare with: the speaker's own enrolled clips, or, for
        a new speaker, the closest enrolled speaker's and those about to be enrolled."""
        # Two short reads, not one around the index search: the search may wait for the
        # index's file lock, and a read held meanwhile made other processes' queries
        # time out as busy (tests/test_concurrency.py).
        with self._storage.read() as snapshot:
            own = snapshot.population(names=[name])
        if own.n_speakers:
            return own
        groups = dict(pending)
        closest = self._closest_speaker(template_of(embeddings))
        if closest is not None:
            with self._storage.read() as snapshot:
                found = snapshot.population(names=[closest])
            groups.update((n, found.of(n)) for n in found.names)
        return Population.from_groups(groups)

    def _closest_speaker(self, template: np.ndarray) -> str | None:
        found = self._storage.search(template[None, :], 1)[0]
        return found[0].speaker if found else None
