"""Speaker encoders: the interface, the registry of encoder families (each with its
defaults), the loader, and the x-vector (ONNX Runtime, OpenVINO, torch) and GE2E
implementations. Heavy libraries load only when a model is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__all__ = [
    "FAMILIES",
    "WINDOW_S",
    "Encoder",
    "EncoderFamily",
    "ExportError",
    "GE2EFamily",
    "HFXVectorEncoder",
    "OnnxXVectorEncoder",
    "WaveformFeatures",
    "XVectorFamily",
    "bf16_available",
    "bf16_supported",
    "default_threshold",
    "embed_clips",
    "encode_windowed",
    "export_model",
    "family_of",
    "load_encoder",
    "load_onnx_encoder",
    "normalize_model_name",
    "open_openvino",
    "windows",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Encoder": "._protocol",
        "FAMILIES": "._registry",
        "EncoderFamily": "._registry",
        "GE2EFamily": "._registry",
        "XVectorFamily": "._registry",
        "default_threshold": "._registry",
        "family_of": "._registry",
        "normalize_model_name": "._registry",
        "load_encoder": "._base",
        "export_model": "._exporting",
        "WINDOW_S": "._frontend",
        "embed_clips": "._frontend",
        "encode_windowed": "._frontend",
        "windows": "._frontend",
        "WaveformFeatures": "._features",
        "HFXVectorEncoder": "._hf",
        "bf16_supported": "._hf",
        "OnnxXVectorEncoder": "._onnx",
        "load_onnx_encoder": "._onnx",
        "ExportError": "._onnx_export",
        "bf16_available": "._openvino",
        "open_openvino": "._openvino",
    },
)

if TYPE_CHECKING:
    from ._base import load_encoder
    from ._exporting import export_model
    from ._features import WaveformFeatures
    from ._frontend import WINDOW_S, embed_clips, encode_windowed, windows
    from ._hf import HFXVectorEncoder, bf16_supported
    from ._onnx import OnnxXVectorEncoder, load_onnx_encoder
    from ._onnx_export import ExportError
    from ._openvino import bf16_available, open_openvino
    from ._protocol import Encoder
    from ._registry import (
        FAMILIES,
        EncoderFamily,
        GE2EFamily,
        XVectorFamily,
        default_threshold,
        family_of,
        normalize_model_name,
    )
