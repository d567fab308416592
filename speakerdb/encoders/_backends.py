"""Which runtime runs an x-vector model: the backend switch of the x-vector family.

An x-vector model runs on one of these backends (``backend=``, else
``SPEAKERDB_BACKEND``, else ``auto``):

- ``auto``: ONNX Runtime on the model's cached ONNX export, built on first use
  (:mod:`speakerdb.encoders._onnx`), about twice torch's speed with the model
  card's embeddings, and no torch import once cached; torch where that cannot be had.
- ``onnx``: ONNX Runtime or an error.
- ``torch``: transformers and torch, fp32, the model card's computation
  (:mod:`speakerdb.encoders._hf`).
- ``openvino-bf16``: the opt-in fast path, OpenVINO in bfloat16 on the same
  cached export (:mod:`speakerdb.encoders._openvino`, the ``fast`` extra).
- ``torch-bf16``: torch with bfloat16 weights; slower than ``openvino-bf16``.

The bf16 paths' embeddings are close to fp32's, not equal, but comparable with
them: a database may be built with one backend and queried with another. On a
CPU without bf16 instructions they would be slower than fp32, so ``auto`` is
used instead, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ._protocol import Encoder

__all__ = ["load_xvector"]

log = logging.getLogger(__name__)


def load_xvector(model: str, backend: str, **options: Any) -> Encoder:
    """Load x-vector ``model`` on the resolved ``backend`` with the loader ``options``."""
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        # A hub id is never written so: this was meant as a folder.
        raise ModelError(
            f"{model}: no such model folder; pass a folder written by save_pretrained(), "
            "a hub id, or 'resemblyzer'"
        )
    if backend == "openvino-bf16":
        from ._openvino import bf16_available

        if bf16_available():
            from ._onnx import load_onnx_encoder

            return load_onnx_encoder(model, required=True, runtime="openvino-bf16", **options)
        backend = _no_bf16()
    if backend == "torch-bf16":
        from ._hf import HFXVectorEncoder, bf16_supported

        if bf16_supported():
            return HFXVectorEncoder.load(model, precision="bf16", **options)
        backend = _no_bf16()
    if backend == "torch":
        from ._hf import HFXVectorEncoder

        return HFXVectorEncoder.load(model, **options)
    from ._onnx import load_onnx_encoder

    return load_onnx_encoder(model, required=backend == "onnx", **options)


def _no_bf16() -> str:
    log.warning("this CPU has no bf16 instructions (AVX512-BF16, AMX): using backend auto")
    return "auto"
