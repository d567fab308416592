"""The x-vector models' input features in numpy: what ``Wav2Vec2FeatureExtractor`` does
to one unpadded clip, without importing transformers.

For a single clip that is all there is to it: the samples as float32, and, when
the model's ``preprocessor_config.json`` sets ``do_normalize``, zero mean and
unit variance (variance plus 1e-7 under the square root), computed in float32
as transformers computes it, so the result is bit-identical (a test checks).
No attention mask is needed: an unpadded clip's mask is all ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError

__all__ = ["WaveformFeatures"]

_SUPPORTED = "Wav2Vec2FeatureExtractor"


@dataclass(frozen=True)
class WaveformFeatures:
    """A ``Wav2Vec2FeatureExtractor``'s settings, applied to one clip at a time."""

    sampling_rate: int
    do_normalize: bool

    @classmethod
    def from_config(cls, model: str, preprocessor: dict[str, Any]) -> WaveformFeatures:
        """Read ``preprocessor_config.json``'s settings; raise ModelError for another
        feature extractor (the transformers backend handles those)."""
        kind = preprocessor.get("feature_extractor_type")
        if kind != _SUPPORTED or int(preprocessor.get("feature_size", 1)) != 1:
            raise ModelError(
                f"{model} uses the feature extractor {kind!r}, not {_SUPPORTED}; "
                "use SPEAKERDB_BACKEND=torch"
            )
        return cls(
            sampling_rate=int(preprocessor.get("sampling_rate", 16_000)),
            do_normalize=bool(preprocessor.get("do_normalize", True)),
        )

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """The model's ``input_values`` for one clip: float32, shape ``(1, n_samples)``."""
        values = np.asarray(clip, dtype=np.float32)
        if self.do_normalize:
            values = (values - values.mean()) / np.sqrt(values.var() + 1e-7)
        return values.reshape(1, -1)
