"""Synthetic speaker templates shaped like real ones, for benchmarks at 10^4 to 10^6 speakers.

Uniform random unit vectors are a poor stand-in: in 512 dimensions every
pair is nearly orthogonal, which makes any index look good or bad for the
wrong reasons. Real templates share a large common direction, vary in a
low-dimensional subspace and come in groups of similar voices. A template
here is the unit vector of

    m * u0 + B (a * c_g + s * e_i) + f * n_i

with ``u0`` a common direction, ``B`` an orthonormal basis of an
``r``-dimensional subspace, ``c_g`` the centre of the speaker's group (one of
``groups``), ``e_i`` the speaker's own offset and ``n_i`` a small isotropic
part. A query is a noisy template: noise of relative energy 0.2 to 0.6, half
in the subspace and half isotropic, plus a little of the common direction.

The constants are fitted to GE2E templates (3 clips each) and 3 s queries of
the 11 real voices of the shared corpus (``bench_search.py --real-stats``
measures them again): template-to-template cosine mean 0.64, sd 0.084;
genuine query to template 0.87 (sd 0.06); impostor 0.60 (sd 0.086); the
utterances' participation ratio (intrinsic dimension) is 16. The mean and the
sd of the pairwise cosine together fix ``r`` near 18 (sd = (a^2+s^2)/sqrt(r)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The real statistics the constants are fitted to (GE2E on the shared corpus).
REAL = {
    "template cos mean": 0.643,
    "template cos sd": 0.084,
    "genuine cos mean": 0.874,
    "impostor cos mean": 0.601,
    "impostor cos sd": 0.086,
}


@dataclass(frozen=True)
class Shape:
    common: float = 0.61**0.5  # m: m^2 is the mean cosine between unrelated templates
    group: float = 0.17**0.5  # a
    own: float = 0.13**0.5  # s
    iso: float = 0.03**0.5  # f
    rank: int = 18  # r
    groups: int = 1000


class Population:
    """A deterministic population: template ``i`` is the same whatever else is drawn."""

    def __init__(self, dim: int, seed: int = 0, shape: Shape | None = None) -> None:
        self.dim, self.seed, self.shape = dim, seed, shape or Shape()
        rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(rng.standard_normal((dim, self.shape.rank + 1)))
        self.u0 = basis[:, 0].astype(np.float32)
        self.basis = basis[:, 1:].astype(np.float32)
        r = self.shape.rank
        self.centres = (rng.standard_normal((self.shape.groups, r)) / np.sqrt(r)).astype(np.float32)

    def templates(self, start: int, stop: int) -> np.ndarray:
        """Templates ``start`` to ``stop`` (unit rows, float32)."""
        rng = np.random.default_rng([self.seed, start, stop])
        n, sh, r = stop - start, self.shape, self.shape.rank
        group = rng.integers(0, sh.groups, n)
        sub = sh.group * self.centres[group] + sh.own * (
            rng.standard_normal((n, r), dtype=np.float32) / np.sqrt(r)
        )
        x = sub @ self.basis.T
        x += sh.common * self.u0
        x += sh.iso * rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        return _unit(x)

    def queries(self, templates: np.ndarray, seed: int) -> np.ndarray:
        """Noisy versions of ``templates``, as test clips of those speakers would be."""
        rng = np.random.default_rng([self.seed, seed, 7])
        n, r = len(templates), self.shape.rank
        energy = rng.uniform(0.2, 0.6, (n, 1)).astype(np.float32)
        inside = (rng.standard_normal((n, r), dtype=np.float32) / np.sqrt(r)) @ self.basis.T
        iso = rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        # A clip's own noise shares some of the common direction, as real ones do.
        noise = np.sqrt(energy / 2) * (inside + iso) + 0.3 * energy * self.u0
        return _unit(templates + noise)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def statistics(templates: np.ndarray, queries: np.ndarray, owners: np.ndarray) -> dict[str, float]:
    """The statistics of :data:`REAL`, measured on a sample: ``queries[i]`` is ``owners[i]``."""
    sample = templates[:2000]
    tt = sample @ sample.T
    upper = tt[np.triu_indices(len(sample), 1)]
    scores = queries @ templates.T
    genuine = scores[np.arange(len(queries)), owners]
    mask = np.ones_like(scores, dtype=bool)
    mask[np.arange(len(queries)), owners] = False
    impostor = scores[mask]
    return {
        "template cos mean": float(upper.mean()),
        "template cos sd": float(upper.std()),
        "genuine cos mean": float(genuine.mean()),
        "impostor cos mean": float(impostor.mean()),
        "impostor cos sd": float(impostor.std()),
    }


def measure_real(per_speaker: int = 30) -> dict[str, float]:
    """:data:`REAL`, measured again: GE2E embeddings of the shared corpus's clips of 2 s or
    more, the first 3 of each voice averaged into its template, the others its queries."""
    import csv

    from corpus import ensure_corpus

    from speakerdb.audio import load_clip
    from speakerdb.encoders._ge2e import GE2EEncoder
    from speakerdb.errors import AudioError

    rows = list(csv.DictReader((ensure_corpus() / "manifest.csv").open()))
    by_speaker: dict[str, list[str]] = {}
    for row in rows:
        if float(row["duration_s"]) >= 2.0:
            by_speaker.setdefault(row["speaker_id"], []).append(row["path"])
    encoder = GE2EEncoder.load()
    templates, queries, owners = [], [], []
    for i, paths in enumerate(by_speaker.values()):
        clips = []
        for path in paths[:: max(1, len(paths) // per_speaker)][:per_speaker]:
            try:
                clips.append(load_clip(path).samples)
            except AudioError:
                continue  # the corpus's few silent clips
        vectors = _unit(encoder.encode(clips))
        templates.append(_unit(vectors[:3].mean(0, keepdims=True))[0])
        queries.append(vectors[3:])
        owners += [i] * (len(vectors) - 3)
    return statistics(np.stack(templates), np.concatenate(queries), np.asarray(owners))
