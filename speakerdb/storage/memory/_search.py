"""Brute-force search over one published state: the queries times the matrix of
templates, built once per state, and the ``k`` best of each row."""

from __future__ import annotations

import numpy as np

from ...types import Match
from .._marks import Found
from ._groups import marks_of
from ._state import State

__all__ = ["find"]


def find(state: State, queries: np.ndarray, k: int, group: str | None, overall: int) -> Found:
    """:meth:`~speakerdb.storage.Storage.find` on ``state``: the ``k`` best matches of each
    query, within ``group`` if given (and then the ``overall`` best of everyone too)."""
    marks = marks_of(state)
    ids, names, matrix = _matrix_of(state)
    scores = np.asarray(queries, np.float32) @ matrix.T if len(ids) else None
    if group is None:
        return marks.found(_best(scores, names, k, len(queries)))
    among = np.isin(ids, marks.members(group).ids)
    within = None if scores is None else np.where(among, scores, -np.inf)
    found = _best(within, names, min(k, int(among.sum())), len(queries))
    return marks.found(found, _best(scores, names, overall, len(queries)) if overall else None)


def _best(scores: np.ndarray | None, names: list[str], k: int, n: int) -> list[tuple[Match, ...]]:
    """The ``k`` best of each row of ``scores`` (columns: ``names``), brute force."""
    if scores is None or k < 1:
        return [() for _ in range(n)]
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        tuple(Match(names[j], float(row[j])) for j in order)
        for row, order in zip(scores, best, strict=True)
    ]


def _matrix_of(state: State) -> tuple[np.ndarray, list[str], np.ndarray]:
    if state.matrix is None:
        ids = np.asarray(sorted(state.speakers), np.int64)
        people = [state.speakers[int(i)] for i in ids]
        dim = state.encoder.dim if state.encoder is not None else 0
        matrix = np.stack([p.template for p in people]) if people else np.zeros((0, dim))
        # Two searches may build it at once; both build the same, and either is kept.
        state.matrix = (ids, [p.name for p in people], matrix.astype(np.float32))
    return state.matrix
