"""Speaker embeddings from a transformers ``AutoModelForAudioXVector`` checkpoint.

The model is loaded the way Hugging Face loads everything: a hub id goes
through the HF cache (``cache_dir``, ``HF_HOME``) at ``revision``, and
``local_files_only`` (or ``HF_HUB_OFFLINE=1`` / ``SPEAKERDB_OFFLINE=1``) keeps
it off the network; a local directory is read as it is. A hub id of which the
cache holds nothing, offline or with the Hub out of reach, is refused before
transformers and torch are imported (they take seconds to say the same).

Clips are never padded to each other: the group-norm feature encoder of these
checkpoints sees padded samples, so padding would make a clip's embedding
depend on its batch. Clips of exactly the same length are batched together,
the others run one by one, and each is fed exactly as the model card does
(feature extractor output, attention mask included).

This is the ``torch`` backend, and the fallback of ``auto`` where ONNX Runtime
cannot run a model (:mod:`speakerdb.encoders._onnx`). With ``precision="bf16"``
(backend ``torch-bf16``) the weights and activations are bfloat16: faster on a
CPU with bf16 instructions (AVX512-BF16 or AMX), and close to, not equal to,
the fp32 embeddings (README, "Embedding speed and one-shot latency"). Such
embeddings may be compared with fp32 ones of the same model, so the precision
is not part of :class:`~speakerdb.types.EncoderInfo`.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio._decode import SAMPLE_RATE
from ..config import ENV_OFFLINE, env_flag
from ..errors import ModelError
from ..types import EncoderInfo
from ._exportfile import require_torch
from ._model_files import model_revision

__all__ = ["PRECISIONS", "HFXVectorEncoder", "bf16_supported"]

log = logging.getLogger(__name__)

_MAX_BATCH = 8
_TRANSFORMERS_CACHE_VARIABLES = (
    "TRANSFORMERS_CACHE",
    "PYTORCH_TRANSFORMERS_CACHE",
    "PYTORCH_PRETRAINED_BERT_CACHE",
)
PRECISIONS = ("fp32", "bf16")


class HFXVectorEncoder:
    """An x-vector checkpoint behind the :class:`~speakerdb.encoders._base.Encoder` interface."""

    def __init__(self, model: Any, feature_extractor: Any, info: EncoderInfo) -> None:
        self._model = model
        self._features = feature_extractor
        self._info = info

    @classmethod
    def load(
        cls,
        model: str,
        *,
        revision: str | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | None = None,
        precision: str = "fp32",
    ) -> HFXVectorEncoder:
        """Load ``model`` (hub id or local directory); raise ModelError naming the fix.

        ``precision`` is ``"fp32"`` (the model card's) or ``"bf16"``.
        """
        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}: {precision!r}")
        require_torch(model)
        offline = env_flag(ENV_OFFLINE) if local_files_only is None else local_files_only
        kwargs = {"revision": revision, "local_files_only": True, "cache_dir": cache_dir}
        try:
            # The cache first: a cached model then loads without any network round trip.
            _require_cached(model, kwargs)
            features, network = _load_parts(model, kwargs)
        except ModelError as cached_miss:
            if offline or Path(model).expanduser().exists():
                raise
            if not _hub_reachable():
                # huggingface_hub would retry for about a minute before giving up.
                online = {**kwargs, "local_files_only": False}
                reason = OSError("the Hub cannot be reached")
                raise ModelError(_missing_model_message(model, online, reason)) from cached_miss
            features, network = _load_parts(model, {**kwargs, "local_files_only": False})
        _check_rate(model, features)
        info = EncoderInfo(
            model=model,
            revision=_revision_of(model, network, revision, cache_dir),
            dim=int(network.config.xvector_output_dim),
            sample_rate=int(features.sampling_rate),
        )
        if precision == "bf16":
            import torch

            network = network.to(torch.bfloat16)
        log.info("loaded %s (revision %s, %d-d, %s)", model, info.revision, info.dim, precision)
        return cls(network, features, info)

    @property
    def info(self) -> EncoderInfo:
        return self._info

    @property
    def network(self) -> Any:
        """The torch model (what :mod:`speakerdb.encoders._onnx_export` exports)."""
        return self._model

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono clips; float32 ``(n, dim)``, unit rows, in input order."""
        out = np.empty((len(clips), self._info.dim), dtype=np.float32)
        for indices in _same_length_batches(clips):
            out[indices] = self._embed([clips[i] for i in indices])
        return out

    def _embed(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self._features(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        dtype = next(self._model.parameters()).dtype
        inputs["input_values"] = inputs["input_values"].to(dtype)
        with torch.inference_mode():
            vectors = self._model(**inputs).embeddings
            vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        return vectors.numpy().astype(np.float32, copy=False)


def _same_length_batches(clips: Sequence[np.ndarray]) -> list[list[int]]:
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_length[len(clip)].append(i)
    batches = []
    for indices in by_length.values():
        batches += [indices[k : k + _MAX_BATCH] for k in range(0, len(indices), _MAX_BATCH)]
    return batches


def _load_parts(model: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    try:
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector
    except ImportError as exc:  # pragma: no cover - transformers is a hard dependency
        raise ModelError(f"transformers is not installed ({exc}); reinstall speakerdb") from exc
    # Never run code shipped with a model; weights load as safetensors, or through
    # torch.load(weights_only=True), which refuses pickles that hold anything else.
    kwargs = {**kwargs, "trust_remote_code": False}
    try:
        features = AutoFeatureExtractor.from_pretrained(model, **kwargs)
        network = AutoModelForAudioXVector.from_pretrained(model, **kwargs)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"cannot load {model}: its weights file holds more than tensors, and speakerdb "
            "never unpickles arbitrary objects; use a model saved as model.safetensors"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(_missing_model_message(model, kwargs, exc)) from exc
    return features, network.eval()


def _require_cached(model: str, kwargs: dict[str, Any]) -> None:
    """Raise the cache miss's ModelError when the Hugging Face cache holds nothing of hub
    id ``model`` (no revision, no file): transformers would find nothing either, after
    it and torch took seconds to import. A local path, or what is no hub id, is left to
    transformers; so is a model with anything cached, whose miss it can tell better."""
    if Path(model).expanduser().exists() or model.count("/") > 1 or not model.strip("/"):
        return
    # Light (tens of ms), and the folder transformers reads: HF_HUB_CACHE, HF_HOME, ...
    from huggingface_hub import constants

    if kwargs.get("cache_dir"):
        folders = [str(kwargs["cache_dir"])]
    else:
        # transformers 4 also reads its own, older cache variables.
        older = (os.environ.get(name) for name in _TRANSFORMERS_CACHE_VARIABLES)
        folders = [constants.HF_HUB_CACHE, *(folder for folder in older if folder)]
    repo = "models--" + model.replace("/", "--")
    if not any((Path(folder).expanduser() / repo).exists() for folder in folders):
        reason = OSError(f"nothing of it in {folders[0]}")
        raise ModelError(_missing_model_message(model, kwargs, reason))


def _missing_model_message(model: str, kwargs: dict[str, Any], exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(model).expanduser().exists():
        return (
            f"{model}: not a saved x-vector model ({reason}); "
            "point --model at a folder written by save_pretrained()"
        )
    offline = " (offline mode)" if kwargs.get("local_files_only") else ""
    where = f"model {model!r} is not in the Hugging Face cache and cannot be downloaded{offline}"
    fix = (
        f"connect once so it is cached (`hf download {model}`), "
        "copy a saved model folder here and pass --model DIR, "
        "or use the offline encoder with --model resemblyzer"
    )
    return f"{where} ({reason}): {fix}"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hub's endpoint (honours HF_ENDPOINT)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _check_rate(model: str, features: Any) -> None:
    rate = getattr(features, "sampling_rate", None)
    if rate != SAMPLE_RATE:
        raise ModelError(
            f"model {model!r} expects {rate} Hz audio; speakerdb feeds {SAMPLE_RATE} Hz"
        )


def _revision_of(
    model: str, network: Any, revision: str | None, cache_dir: str | None
) -> str | None:
    """The hub commit the weights came from, or a hash of a local directory's weights."""
    # transformers 4 records the commit; 5 does not, and the cache's snapshot tells it.
    commit = getattr(network.config, "_commit_hash", None)
    if commit:
        return str(commit)
    return model_revision(model, revision=revision, cache_dir=cache_dir)


def bf16_supported() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX) torch uses."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
