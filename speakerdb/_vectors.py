"""The enrollment rule.

Each utterance embedding is L2-normalised when it is computed. A speaker's
template is the L2-normalised mean of their normalised utterance embeddings,
recomputed from all of the speaker's utterances whenever one is added or
removed. Identification and verification score a query by the cosine of its
normalised embedding with the template.
"""

from __future__ import annotations

import numpy as np

__all__ = ["l2_normalize", "template_of"]

_EPS = 1e-12


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, _EPS)).astype(np.float32)


def template_of(embeddings: np.ndarray) -> np.ndarray:
    """The template of a speaker with these utterance embeddings ``(n, d)``, ``n >= 1``."""
    embeddings = np.asarray(embeddings, dtype=np.float64).reshape(-1, np.shape(embeddings)[-1])
    if len(embeddings) == 0:
        raise ValueError("a template needs at least one utterance")
    return l2_normalize(l2_normalize(embeddings).astype(np.float64).mean(axis=0))
