"""Who spoke when, by name: the service behind :meth:`SpeakerDB.segments
<speakerdb.SpeakerDB.segments>` and :meth:`~speakerdb.SpeakerDB.segments_stream`.

The method:

1. the recording is read in blocks (:mod:`speakerdb.audio._recording`: hours of
   audio in bounded memory);
2. in each block, speech is found and cut into overlapping windows, each embedded
   by the database's encoder (:mod:`speakerdb.diarization`);
3. a block's windows are grouped into voices (average-linkage clustering, strict
   enough that one voice seldom holds two people), linked to the voices of earlier
   blocks; at the end, alike voices merge and the voices of a few windows join
   the voice they are most like;
4. each voice (the mean of its windows) is scored against the enrolled speakers
   (by default by raw cosine: :func:`~speakerdb.decision._policy.voice_policy`). A
   voice is named after its best speaker only when that score reaches the
   threshold: no enrolled voice is forced onto a voice. Several voices
   may take one name (a person is often heard as two voices); the voices named
   after no one are grouped again, more loosely, into strangers: ``unknown-1``,
   ``unknown-2``..., numbered by first appearance;
5. each window goes to the group (a name, or a stranger) it is most like; each
   frame of speech takes its nearest window's group; runs become segments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..audio._recording import MAX_RECORDING_S, BlockFeed, recording_blocks
from ..decision._policy import voice_policy
from ..decision._ranking import Search, Within, rank
from ..diarization import Diarizer, SegmentOptions, agglomerate
from ..diarization._timeline import Run
from ..storage import require_database
from ..types import DecisionPolicy, Match, Segment
from ._groups import QuerySearch

if TYPE_CHECKING:
    from ..audio._decode import ClipInput
    from ..decision._population import Population
    from ..encoders._protocol import Encoder
    from ..storage import Storage
    from ._model import ModelSlot
    from ._settings import Settings

__all__ = [
    "LIVE_OPTIONS",
    "LiveSegments",
    "Naming",
    "Segmenting",
    "group_voices",
    "name_voices",
]

#: Live streams are handled in 10 s blocks: a segment is given out about 12 s after it ends.
LIVE_OPTIONS = SegmentOptions(block_s=10.0)
#: A voice's naming: the match it is named after (accepted) or its best one (not).
Naming = tuple[Match | None, bool]


class Segmenting:
    """``segments`` on one database. Safe to use from several threads at once."""

    def __init__(self, storage: Storage, slot: ModelSlot, settings: Settings) -> None:
        self._storage = storage
        self._slot = slot
        self._settings = settings

    def policy(self, threshold: float | None, score_norm: str | None) -> DecisionPolicy:
        """How voices are named (:func:`~speakerdb.decision._policy.voice_policy`) on a
        database that a write has created."""
        require_database(self._storage)
        return voice_policy(self._settings.sources(), threshold, score_norm)

    def segments(
        self,
        recording: ClipInput,
        threshold: float | None,
        score_norm: str | None,
        options: SegmentOptions | None = None,
        max_duration_s: float | None = None,
        progress: Callable[[float], None] | None = None,
        group: str | None = None,
    ) -> list[Segment]:
        """The segments of a whole recording, named by the :meth:`policy` of ``threshold``
        and ``score_norm``, in order of time; ``progress(seconds)`` is
        called as each block is done, with the seconds of audio done so far. With
        ``group``, voices are named after its members only. ``options`` default to
        :class:`SegmentOptions`' defaults, ``max_duration_s`` to
        :data:`~speakerdb.audio._recording.MAX_RECORDING_S`."""
        policy = self.policy(threshold, score_norm)
        QuerySearch(self._storage, group).check_group()
        options = options or SegmentOptions()
        diarizer = Diarizer(self._slot.encoder(), options)
        limit = _limit(max_duration_s)
        for block in recording_blocks(recording, _block_s(options), limit):
            diarizer.add(block)
            if progress is not None:
                progress(diarizer.seconds)
        diarizer.finish()
        groups, named = self.grouped(diarizer, policy, options, group)
        return _labelled(diarizer.runs(groups), named, {})

    def live(
        self,
        sample_rate: int,
        threshold: float | None,
        score_norm: str | None,
        options: SegmentOptions | None = None,
        max_duration_s: float | None = None,
        group: str | None = None,
    ) -> LiveSegments:
        """A live recording's segments, as its chunks are pushed (:class:`LiveSegments`);
        ``options`` default to :data:`LIVE_OPTIONS`."""
        policy = self.policy(threshold, score_norm)
        QuerySearch(self._storage, group).check_group()
        chosen, limit = options or LIVE_OPTIONS, _limit(max_duration_s)
        return LiveSegments(self, sample_rate, policy, chosen, limit, group)

    def encoder(self) -> Encoder:
        return self._slot.encoder()

    def grouped(
        self,
        diarizer: Diarizer,
        policy: DecisionPolicy,
        options: SegmentOptions,
        group: str | None = None,
    ) -> tuple[np.ndarray, list[Naming]]:
        """Each voice's group (the voices named after one speaker are one group, and
        alike voices named after no one another) and each group's naming; voices are
        named after ``group``'s members only, when given."""
        voices = diarizer.voices
        centroids = voices.centroids()
        seconds = voices.counts * options.hop_s
        searching = QuerySearch(self._storage, group)
        names = name_voices(
            policy, centroids, seconds, searching.search, self._population, searching.within()
        )
        return group_voices(names, centroids, voices.counts, options.unknown_threshold)

    def _population(self) -> Population:
        with self._storage.read() as snapshot:
            return snapshot.population()


class LiveSegments:
    """Segments of live audio: :meth:`push` each chunk as it arrives, :meth:`end` when the
    audio ends; each returns the segments that no later audio can change, in order of
    time, each given once. Labels hold for the whole stream. Not thread-safe: one
    stream, one caller at a time (the HTTP service runs each stream's calls in turn)."""

    def __init__(
        self,
        segmenting: Segmenting,
        sample_rate: int,
        policy: DecisionPolicy,
        options: SegmentOptions,
        max_duration_s: float,
        group: str | None = None,
    ) -> None:
        self._feed = BlockFeed(sample_rate, _block_s(options), max_duration_s)
        self._group = group
        self._diarizer = Diarizer(segmenting.encoder(), options)
        self._segmenting, self._policy, self._options = segmenting, policy, options
        self._unknown: dict[str, str] = {}
        self._named: list[Naming] = []

    @property
    def seconds(self) -> float:
        """Seconds of audio handled so far (16 kHz)."""
        return self._diarizer.seconds

    def push(self, chunk: np.ndarray) -> list[Segment]:
        """Take a chunk of samples (1-D, or ``(frames, channels)``)."""
        out: list[Segment] = []
        for block in self._feed.push(chunk):
            self._diarizer.add(block)
            out += _labelled(self._diarizer.settled(self._groups), self._named, self._unknown)
        return out

    def end(self) -> list[Segment]:
        """The audio has ended: every segment not given yet."""
        out: list[Segment] = []
        for block in self._feed.end():
            self._diarizer.add(block)
        runs = self._diarizer.settled(self._groups, last=True)
        return out + _labelled(runs, self._named, self._unknown)

    def drain(self, chunks: Iterable[np.ndarray]) -> Iterator[Segment]:
        """:meth:`push` every chunk of ``chunks``, then :meth:`end`: the segments, lazily."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.end()

    def _groups(self) -> np.ndarray:
        groups, self._named = self._segmenting.grouped(
            self._diarizer, self._policy, self._options, self._group
        )
        return groups


def name_voices(
    policy: DecisionPolicy,
    centroids: np.ndarray,
    seconds: Sequence[float] | np.ndarray,
    search: Search,
    population: Callable[[], Population],
    within: Within | None = None,
) -> list[Naming]:
    """Each voice's naming by ``policy``, as :meth:`identify` decides a clip of the voice's
    length: its best :class:`Match` and whether it is accepted (``None``: nobody is
    enrolled). Several voices may be named after one speaker (a voice is often heard
    as two); none is named after a speaker it does not reach the threshold for."""
    if not len(centroids):
        return []
    found = rank(
        policy,
        centroids.astype(np.float32),
        1,
        search,
        population,
        [float(s) for s in seconds],
        within,
    )
    return [
        (matches[0], policy.accepts(matches[0].decision_score)) if matches else (None, False)
        for matches in found
    ]


def group_voices(
    names: Sequence[Naming], centroids: np.ndarray, counts: np.ndarray, unknown_threshold: float
) -> tuple[np.ndarray, list[Naming]]:
    """Group ``0..k-1`` of each voice, and each group's naming (its largest voice's)."""
    key: list[object] = []
    unknown = [v for v, (_, accepted) in enumerate(names) if not accepted]
    strangers = agglomerate(centroids[unknown], unknown_threshold, counts[unknown])
    stranger_of = dict(zip(unknown, strangers.tolist(), strict=True))
    for voice, (match, accepted) in enumerate(names):
        key.append(("named", match.speaker) if accepted and match else ("new", stranger_of[voice]))
    order = {k: i for i, k in enumerate(dict.fromkeys(key))}
    groups = np.array([order[k] for k in key], dtype=np.int64)
    named: list[Naming] = [(None, False)] * len(order)
    best = np.full(len(order), -1)
    for voice, group in enumerate(groups):
        if counts[voice] > best[group]:
            best[group], named[group] = counts[voice], names[voice]
    return groups, named


def _labelled(
    runs: Sequence[Run], names: Sequence[Naming], unknown: dict[str, str]
) -> list[Segment]:
    """Segments of runs: a voice named after an accepted speaker gets the name, another
    ``unknown-N`` (kept in ``unknown`` across calls, so a stream keeps its numbers)."""
    out = []
    for run in runs:
        match, accepted = names[run.voice] if run.voice < len(names) else (None, False)
        speaker = match.speaker if accepted and match is not None else None
        if speaker is None:
            # Keyed by the voice's place in the run's grouping, itself keyed by first
            # appearance, so that a stream's numbers hold from block to block.
            label = unknown.setdefault(str(run.voice), f"unknown-{len(unknown) + 1}")
        else:
            label = speaker
        out.append(
            Segment(
                round(run.start_s, 3),
                round(run.end_s, 3),
                speaker,
                label,
                None if match is None else match.score,
                None if match is None else match.decision_score,
            )
        )
    return out


def _limit(max_duration_s: float | None) -> float:
    return MAX_RECORDING_S if max_duration_s is None else max_duration_s


def _block_s(options: SegmentOptions) -> float:
    """The block length, whole 30 ms frames of the speech detector."""
    return round(options.block_s / 0.03) * 0.03
