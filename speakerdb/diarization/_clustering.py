"""Grouping window embeddings into voices, by cosine similarity and nothing else.

:func:`agglomerate` is average-linkage agglomerative clustering: the two groups
whose windows are most alike on average merge while that average cosine is at
least the threshold. :class:`Voices` applies it block by block to a long
recording and links each block's groups to the voices of earlier blocks, so
that memory holds one block's similarities and one running sum per voice.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Voices", "agglomerate", "unit_rows"]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (float64) with each row scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def agglomerate(
    vectors: np.ndarray, threshold: float, sizes: np.ndarray | None = None
) -> np.ndarray:
    """Group labels ``0..k-1`` (numbered in order of first row) of unit ``vectors``.

    Average linkage on cosine similarity; ``sizes`` weights rows that already stand
    for several windows (a voice's centroid), as the Lance-Williams update does.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sim = unit_rows(vectors) @ unit_rows(vectors).T
    np.fill_diagonal(sim, -np.inf)
    weight = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64).copy()
    owner = np.arange(n)
    while n > 1:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, len(sim))
        if sim[i, j] < threshold:
            break
        merged = (weight[i] * sim[i] + weight[j] * sim[j]) / (weight[i] + weight[j])
        sim[i, :], sim[:, i] = merged, merged
        sim[j, :], sim[:, j] = -np.inf, -np.inf
        sim[i, i] = -np.inf
        weight[i] += weight[j]
        owner[owner == j] = i
        n -= 1
    return _first_seen_order(owner)


def _first_seen_order(owner: np.ndarray) -> np.ndarray:
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return np.asarray(rank[inverse], dtype=np.int64)


class Voices:
    """The voices of one recording: a running sum of unit window embeddings and a
    window count for each, grown block by block."""

    def __init__(self, dim: int, cluster_threshold: float, link_threshold: float) -> None:
        self._sums = np.zeros((0, dim))
        self._counts = np.zeros(0, dtype=np.int64)
        self._cluster = cluster_threshold
        self._link = link_threshold

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def counts(self) -> np.ndarray:
        """Windows per voice."""
        return self._counts.copy()

    def centroids(self) -> np.ndarray:
        """Each voice's mean window embedding, unit length: ``(voices, dim)``."""
        return unit_rows(self._sums)

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Group one block's window embeddings, link each group to the most alike voice
        heard before (or make it a new one); return each window's voice."""
        local = agglomerate(vectors, self._cluster)
        out = np.empty(len(vectors), dtype=np.int64)
        for group in range(int(local.max()) + 1 if len(local) else 0):
            members = local == group
            total = np.asarray(vectors, dtype=np.float64)[members].sum(axis=0)
            out[members] = self._link_group(total, int(members.sum()))
        return out

    def _link_group(self, total: np.ndarray, count: int) -> int:
        if len(self._counts):
            sims = self.centroids() @ unit_rows(total)
            best = int(np.argmax(sims))
            if sims[best] >= self._link:
                self._sums[best] += total
                self._counts[best] += count
                return best
        self._sums = np.vstack([self._sums, total[None, :]])
        self._counts = np.append(self._counts, count)
        return len(self._counts) - 1

    def regroup(self, min_windows: int) -> np.ndarray:
        """Merge voices whose centroids are alike (average linkage at the clustering
        threshold), then give each voice of fewer than ``min_windows`` windows to the
        most alike larger one; return the new voice of each old one."""
        if not len(self._counts):
            return np.zeros(0, dtype=np.int64)
        mapping = agglomerate(self.centroids(), self._cluster, self._counts)
        self._merge(mapping)
        small = self._counts < min_windows
        if small.any() and not small.all():
            sims = self.centroids() @ self.centroids().T
            sims[:, small] = -np.inf
            target = np.where(small, np.argmax(sims, axis=1), np.arange(len(small)))
            second = _first_seen_order(target)
            self._merge(second)
            mapping = second[mapping]
        return mapping

    def merge(self, mapping: np.ndarray) -> None:
        """Make voice ``mapping[v]`` of each voice ``v`` (numbers ``0..k-1``)."""
        self._merge(np.asarray(mapping, dtype=np.int64))

    def _merge(self, mapping: np.ndarray) -> None:
        if not len(mapping):
            return
        k = int(mapping.max()) + 1
        sums = np.zeros((k, self._sums.shape[1]))
        np.add.at(sums, mapping, self._sums)
        self._sums = sums
        self._counts = np.bincount(mapping, weights=self._counts, minlength=k).astype(np.int64)
