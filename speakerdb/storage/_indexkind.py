"""Which FAISS index holds the templates: exact ``flat``, or ``ivf`` for large databases.

``flat`` compares a query with every template: exact, and the fastest below a
few tens of thousands of speakers. ``ivf`` (FAISS ``IndexIVFFlat``, inner
product) clusters the templates into about ``2 sqrt(n)`` lists and compares a
query with the templates of the :func:`nprobe_for` lists nearest to it only. It
stores the full vectors, so the scores it returns are exact cosines and
upsert and remove stay exact; only a speaker outside the probed lists can be
missed. On clustered 512-d data shaped like real speaker templates
(``scripts/bench_search.py``) it keeps recall@10 at 0.99 or better.

The database's ``index_kind`` setting (``SpeakerDB.set_index_kind``,
``speakerdb index --kind``) is ``auto`` (default), ``flat`` or ``ivf``. ``auto``
uses IVF from :data:`AUTO_IVF_FROM` speakers, and goes back to flat only below
half of that, so that a database near the crossover does not flip on each
change. An IVF index is trained again (a rebuild from SQLite) when the
database has grown or shrunk enough for its list count to be off by 2x.
Training is deterministic: the same templates give the same index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "AUTO_IVF_FROM",
    "INDEX_KINDS",
    "LISTS_PER_ROOT",
    "NPROBE_POWER",
    "NPROBE_SCALE",
    "IndexChoice",
    "IndexPlan",
    "build",
    "check_ivf_from",
    "check_kind",
    "describe",
    "nprobe_for",
    "plan_for",
    "stored_ids",
    "vector_blocks",
]

#: What the ``index_kind`` setting may hold.
INDEX_KINDS = ("auto", "flat", "ivf")
#: Size from which ``auto`` uses IVF (the measured crossover, scripts/bench_search.py).
AUTO_IVF_FROM = 50_000
#: Lists per sqrt(speakers).
LISTS_PER_ROOT = 2
#: Lists searched per query: ``ceil(NPROBE_SCALE * nlist ** NPROBE_POWER)``. The lists
#: needed for recall@10 of 0.99 in scripts/bench_search.py grew as nlist^0.3 (about
#: 65 of 200, 95 of 632, 130 of 2000); the scale leaves a margin of about 15 %.
NPROBE_SCALE = 15.0
NPROBE_POWER = 0.3
# k-means on up to this many templates per list, for this many rounds: enough
# for good lists, and it keeps training 10^6 templates to seconds.
_TRAIN_POINTS_PER_LIST = 64
_TRAIN_ROUNDS = 12
# FAISS wants at least this many training points per list.
_MIN_POINTS_PER_LIST = 39


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The index to build: ``kind`` ``"flat"`` or ``"ivf"``, with ``nlist`` lists (IVF)."""

    kind: str
    nlist: int = 0


@dataclass(frozen=True, slots=True)
class IndexChoice:
    """A database's index setting and the index it gives now.

    ``setting`` is ``auto``, ``flat`` or ``ivf``; ``ivf_from`` is where ``auto``
    switches to IVF; ``kind`` and ``nlist`` describe the index in use, over
    ``n_speakers`` templates, ``nprobe`` of its lists searched per query.
    """

    setting: str
    ivf_from: int
    kind: str
    nlist: int
    nprobe: int
    n_speakers: int


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`INDEX_KINDS`, else :class:`InputError`."""
    if kind not in INDEX_KINDS:
        raise InputError(f"index kind must be one of {', '.join(INDEX_KINDS)}; got {kind!r}")
    return kind


def check_ivf_from(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"the IVF crossover must be a positive number of speakers, got {value!r}")
    return value


def plan_for(
    setting: str, n: int, current: IndexPlan | None = None, auto_from: int = AUTO_IVF_FROM
) -> IndexPlan:
    """The index for ``n`` templates under ``setting``, given the ``current`` one (if any)."""
    kind = check_kind(setting)
    if kind == "auto":
        was_ivf = current is not None and current.kind == "ivf"
        kind = "ivf" if n >= (auto_from // 2 if was_ivf else auto_from) else "flat"
    if kind == "flat" or n == 0:
        return IndexPlan("flat")
    wanted = max(1, min(round(LISTS_PER_ROOT * math.sqrt(n)), n // _MIN_POINTS_PER_LIST))
    close = current is not None and current.nlist / 2 < wanted < current.nlist * 2
    if close and current is not None and current.kind == "ivf":
        return current  # the list count is near the one wanted: no retraining
    return IndexPlan("ivf", wanted)


def describe(index: Any) -> IndexPlan:
    """The plan a FAISS index was built by."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        return IndexPlan("ivf", int(index.nlist))
    return IndexPlan("flat")


def build(plan: IndexPlan, dim: int, ids: np.ndarray, vectors: np.ndarray) -> Any:
    """A FAISS index by ``plan`` holding ``vectors`` under ``ids`` (trained if IVF)."""
    import faiss

    index: Any
    if plan.kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        index = faiss.index_factory(dim, f"IVF{plan.nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = _TRAIN_ROUNDS
        index.cp.max_points_per_centroid = _TRAIN_POINTS_PER_LIST
        index.cp.seed = 1234
        index.cp.min_points_per_centroid = 1  # FAISS would print a warning for small sets
        # Training on rows in id order makes a rebuild from SQLite deterministic.
        order = np.argsort(ids, kind="stable")
        ids, vectors = ids[order], vectors[order]
        index.train(vectors)
        index.nprobe = nprobe_for(plan.nlist)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def nprobe_for(nlist: int) -> int:
    """How many of ``nlist`` lists a query searches."""
    return min(nlist, math.ceil(NPROBE_SCALE * nlist**NPROBE_POWER))


def stored_ids(index: Any) -> np.ndarray:
    """Every id in a FAISS index built by :func:`build`."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        lists: Any = index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(index.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def vector_blocks(index: Any) -> list[np.ndarray]:
    """Views of every vector in a FAISS index built by :func:`build` (no copies)."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        lists: Any = index.invlists
        return [
            faiss.rev_swig_ptr(lists.get_codes(i), lists.list_size(i) * lists.code_size).view(
                np.float32
            )
            for i in range(index.nlist)
            if lists.list_size(i)
        ]
    flat: Any = faiss.downcast_index(index.index)
    if not flat.ntotal:
        return []
    return [faiss.rev_swig_ptr(flat.get_xb(), int(flat.ntotal) * int(flat.d))]
