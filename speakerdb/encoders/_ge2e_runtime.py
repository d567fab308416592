"""Where the GE2E network runs: torch, or ONNX Runtime on an export made from the same weights.

The network maps a batch of 160-frame mel partials ``(n, 160, 40)`` to their
unnormalised partial embeddings ``(n, 256)``: the 3-layer LSTM's last hidden
state through the linear layer and a ReLU. :mod:`speakerdb.encoders._ge2e` does
everything around it in numpy.

With ONNX Runtime (backends ``auto`` and ``onnx``), the export is built from
the weights on first use, checked against torch, and cached under
:func:`~speakerdb.config.cache_root` keyed by the weights' SHA-256
(:mod:`speakerdb.encoders._onnx_export`); later loads need no torch import, which is most
of a one-shot ``speakerdb verify --model resemblyzer``. The embeddings are
torch's within float rounding, so the encoder's identity does not change.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ._exportfile import require_torch
from ._onnx_export import EXPORT_VERSION, export_checked
from ._ort_session import ExportError, open_prepared
from ._sealed import private_cache

__all__ = ["Partials", "export_file", "onnx_partials", "torch_partials"]

log = logging.getLogger(__name__)

#: Mel partials ``(n, 160, 40)`` float32 to partial embeddings ``(n, 256)``.
Partials = Callable[[np.ndarray], np.ndarray]

_INSTALL_HINT = "install them with `pip install --no-deps resemblyzer`"
_N_MELS = 40
_HIDDEN = 256
# What torch.load and load_state_dict raise on a corrupt or foreign checkpoint.
_LOAD_ERRORS = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
)


def torch_partials(data: bytes, path: Path) -> Partials:
    """The network from checkpoint bytes ``data`` (read from ``path``), run by torch."""
    import torch

    net = _network(data, path)

    def run(mels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = net(torch.from_numpy(mels)).numpy()
        return out

    return run


def onnx_partials(data: bytes, path: Path, *, required: bool) -> Partials | None:
    """The network run by ONNX Runtime, exported on first use; None (backend ``auto``)
    or ModelError (backend ``onnx``) when that cannot be had.
    """
    target = export_file(data)
    try:
        session = _cached_session(target)
        if session is None:
            _export(data, path, target)
            session = open_prepared(target)
    except ExportError as exc:
        if required:
            raise ModelError(f"cannot run the GE2E encoder with ONNX Runtime: {exc}") from exc
        log.warning("running the GE2E encoder with torch, not ONNX Runtime: %s", exc)
        return None

    def run(mels: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {"input": mels})[0]
        return out

    return run


def export_file(data: bytes) -> Path:
    """Where the export of the checkpoint bytes ``data`` is cached."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    return private_cache("onnx") / f"ge2e-{digest}-v{EXPORT_VERSION}.onnx"


def _cached_session(target: Path) -> Any:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"{exc}; `pip install onnxruntime onnx`") from exc
    if not target.is_file():
        return None
    try:
        return open_prepared(target)
    except ExportError as exc:
        log.warning("the cached ONNX export %s is unusable (%s); rebuilding it", target, exc)
        target.unlink(missing_ok=True)
        return None


def _export(data: bytes, path: Path, target: Path) -> None:
    net = _network(data, path)
    rng = np.random.default_rng(0)
    probes = [rng.random((n, 160, _N_MELS), dtype=np.float32) for n in (3, 5)]
    log.info("exporting the GE2E encoder to ONNX, once (cached in %s)", target.parent)
    export_checked(net, target, probes, dynamic_axis=0)


def _network(data: bytes, path: Path) -> Any:
    """The GE2E network with the checkpoint's ``model_state``; no arbitrary object unpickled."""
    require_torch("resemblyzer")
    import torch

    class GE2ENetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(_N_MELS, _HIDDEN, 3, batch_first=True)
            self.linear = torch.nn.Linear(_HIDDEN, _HIDDEN)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            hidden = self.lstm(mels)[1][0][-1]
            return torch.relu(self.linear(hidden))

    net = GE2ENetwork()
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        state = checkpoint["model_state"]
        # The GE2E loss's similarity scale and bias are training-only parameters.
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    except _LOAD_ERRORS as exc:
        raise ModelError(f"cannot load GE2E weights {path}: {exc}; {_INSTALL_HINT}") from exc
    return net.eval().requires_grad_(False)
