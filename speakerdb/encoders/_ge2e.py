"""The offline GE2E speaker encoder, from the weights shipped in the ``resemblyzer`` wheel.

This re-implements, with numpy and torch or ONNX Runtime only, what resemblyzer
0.1.4 does in ``preprocess_wav`` and ``VoiceEncoder.embed_utterance``; resemblyzer
itself is never imported, because its ``__init__`` imports librosa, scipy and
webrtcvad. Only its ``pretrained.pt`` is read, with ``torch.load(weights_only=True)``
(once: the network then runs from its cached ONNX export, :mod:`speakerdb.encoders._ge2e_runtime`).

The pipeline for one 16 kHz clip:

1. Volume: raise the clip to -30 dBFS RMS; louder clips are left as they are.
2. Silences, only with ``trim_silences=True``: resemblyzer's webrtcvad
   trimming of silences longer than about 0.2 s. It needs the optional
   ``webrtcvad`` module (``pip install webrtcvad-wheels``); without it, asking
   for it raises :class:`~speakerdb.errors.ModelError` rather than silently
   doing less. It is off by default because webrtcvad is not a dependency, and
   embeddings that changed with what happens to be installed would mix two
   kinds of vector in one database unnoticed (``info`` does not record it).
   On the shared corpus it did not lower the equal error rate either.
3. Features: librosa's ``melspectrogram`` defaults (power 2, periodic Hann,
   25 ms window, 10 ms hop, 40 Slaney-normalised Slaney-scale mels, centred
   frames with zero padding), reproduced in numpy.
4. Embedding: 1.6 s partial windows at 1.3 per second (a short last window is
   zero-padded and kept when it covers at least 75 %; a clip shorter than 1.6 s
   is one padded window), each embedded by the 3-layer LSTM, the unit partial
   embeddings averaged and L2-normalised.

Each clip is embedded on its own (its partials, which all have 160 frames, form
its batches), so a clip's embedding never depends on the other clips passed
with it, and the same clip always gives bit-identical output.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import math
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np

from ..config import resolve_backend
from ..errors import AudioError, ModelError
from ..types import EncoderInfo
from ._ge2e_runtime import Partials, onnx_partials, torch_partials

__all__ = ["GE2EEncoder", "default_weights", "load_ge2e"]

logger = logging.getLogger(__name__)

MODEL_NAME = "resemblyzer"
SAMPLE_RATE = 16_000
EMBEDDING_DIM = 256
_INSTALL_HINT = "install them with `pip install --no-deps resemblyzer`"

_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_N_MELS = 40
# Centred frames are zero-padded, as librosa >= 0.9.0 does and so every librosa
# that resemblyzer 0.1.4 accepts (>= 0.9.1). The weights were trained with the
# reflect padding of older librosa, but zeros reproduce resemblyzer as users run
# it (reflect gives a cosine down to 0.996 against it on clips starting loud).
_PAD_MODE: Final = "constant"

# librosa's "hann" is scipy's periodic window: get_window("hann", n_fft, fftbins=True).
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)

_PARTIAL_FRAMES = 160  # 1.6 s
_PARTIAL_RATE = 1.3  # partial windows per second
_MIN_COVERAGE = 0.75
# At most this many partials (about 50 s of audio) go through the LSTM at once,
# which bounds memory on long clips.
_MAX_BATCH = 64

_TARGET_DBFS = -30.0
_INT16_MAX = 2**15 - 1
_VAD_WINDOW = 480  # 30 ms
_VAD_AVERAGE_WIDTH = 8
_VAD_MAX_SILENCE = 6  # windows


class GE2EEncoder:
    """Resemblyzer's pretrained GE2E speaker encoder: 256-d embeddings of 16 kHz clips.

    The network runs with ONNX Runtime or torch (:mod:`speakerdb.encoders._ge2e_runtime`);
    torch runs under its global thread settings (``torch.set_num_threads``).
    """

    def __init__(self, partials: Partials, revision: str, *, trim_silences: bool) -> None:
        """Wrap a loaded network; use :meth:`load` rather than calling this."""
        self._partials = partials
        self._revision = revision
        self._trim_silences = trim_silences

    @classmethod
    def load(
        cls,
        *,
        weights: str | Path | None = None,
        trim_silences: bool = False,
        backend: str | None = None,
    ) -> GE2EEncoder:
        """Load the pretrained weights, by default ``resemblyzer/pretrained.pt``, on
        ``backend`` (``auto``: ONNX Runtime where it can be had). The bf16 fast paths
        gain nothing on this small LSTM (OpenVINO in bf16 measured 1.06x ONNX Runtime):
        ``openvino-bf16`` runs as ``auto``, ``torch-bf16`` as ``torch``, both in fp32.

        Raises :class:`~speakerdb.errors.ModelError` naming the fix when the
        weights are missing or unreadable, or when ``trim_silences`` is asked
        for and the ``webrtcvad`` module is not installed.
        """
        if trim_silences and importlib.util.find_spec("webrtcvad") is None:
            raise ModelError("trim_silences needs webrtcvad: `pip install webrtcvad-wheels`")
        path = Path(weights) if weights is not None else default_weights()
        start = time.perf_counter()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read GE2E weights {path}: {exc}; {_INSTALL_HINT}") from exc
        chosen = resolve_backend(backend)
        if chosen.endswith("-bf16"):
            logger.info("GE2E has no bf16 path: backend %s runs it in fp32", chosen)
        partials = None
        if chosen in ("auto", "onnx", "openvino-bf16"):
            partials = onnx_partials(data, path, required=chosen == "onnx")
        if partials is None:
            partials = torch_partials(data, path)
        revision = hashlib.sha256(data).hexdigest()[:12]
        logger.debug("loaded GE2E %s (%s) in %.2f s", path, revision, time.perf_counter() - start)
        return cls(partials, revision, trim_silences=trim_silences)

    @property
    def info(self) -> EncoderInfo:
        """``resemblyzer``, the first 12 hex digits of the weights' SHA-256, 256-d, 16 kHz."""
        return EncoderInfo(MODEL_NAME, self._revision, EMBEDDING_DIM, SAMPLE_RATE)

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 1-D 16 kHz mono clips; return a float32 ``(len(clips), 256)`` array of unit rows.

        Raises :class:`~speakerdb.errors.AudioError` for a clip that is not a
        non-empty 1-D array of finite samples.
        """
        out = np.empty((len(clips), EMBEDDING_DIM), dtype=np.float32)
        for i, clip in enumerate(clips):
            out[i] = self._embed(_checked(clip, i))
        return out

    #: One partial (1.6 s): :meth:`encode_windows` embeds windows of this many samples.
    window_samples = _PARTIAL_FRAMES * _HOP

    def encode_windows(self, wav: np.ndarray, starts: Sequence[int]) -> np.ndarray:
        """Unit embeddings of the 1.6 s windows ``wav[s : s + 25600]`` for each ``s`` in
        ``starts`` (multiples of 160), each as :meth:`encode` embeds such a clip alone
        (its volume raised to -30 dBFS; one partial), except that the frames at its
        edges see the signal around it rather than zeros. The mel spectrogram of
        ``wav`` is computed once for all windows: 20 times faster than :meth:`encode`.
        """
        wav = _checked(wav, 0)
        if not len(starts):
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        frames = [int(s) // _HOP for s in starts]
        padded = np.pad(wav, (_N_FFT // 2, _N_FFT // 2 + self.window_samples))
        out = np.empty((len(frames), EMBEDDING_DIM), dtype=np.float32)
        for k in range(0, len(frames), _MAX_BATCH):
            batch = frames[k : k + _MAX_BATCH]
            mels = _partial_mels(padded, batch)
            # Mel power scales with the square of the gain encode() would apply.
            mels *= (
                np.array([_gain(wav, f * _HOP, self.window_samples) for f in batch])[:, None, None]
                ** 2
            )
            partial = self._partials(mels)
            out[k : k + _MAX_BATCH] = partial / np.linalg.norm(partial, axis=1, keepdims=True)
        return out

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        """Embed one checked clip: the normalised mean of its partial embeddings."""
        wav = _normalize_volume(wav)
        if self._trim_silences:
            wav = _trim_long_silences(wav)
        starts = _partial_starts(len(wav))
        # Like resemblyzer, zero-pad the clip so that the last partial is whole.
        needed = starts[-1] * _HOP + _PARTIAL_FRAMES * _HOP
        wav = np.pad(wav, (0, max(0, needed - len(wav))))
        padded = np.pad(wav, _N_FFT // 2, mode=_PAD_MODE)  # centred frames
        total = np.zeros(EMBEDDING_DIM, dtype=np.float64)
        for k in range(0, len(starts), _MAX_BATCH):
            partial = self._partials(_partial_mels(padded, starts[k : k + _MAX_BATCH]))
            partial = partial / np.linalg.norm(partial, axis=1, keepdims=True)
            total += partial.sum(axis=0, dtype=np.float64)
        norm = np.linalg.norm(total)
        if not np.isfinite(norm) or norm == 0:
            raise ModelError("the GE2E encoder gave no usable embedding for this clip")
        return (total / norm).astype(np.float32)


def default_weights() -> Path:
    """Locate ``pretrained.pt`` in the installed resemblyzer package, without importing it."""
    # find_spec on a top-level name does not run the package's __init__, unlike
    # importlib.resources.files(), which imports it (and so librosa).
    spec = importlib.util.find_spec("resemblyzer")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "pretrained.pt"
        if path.is_file():
            return path
    # A slim install runs GE2E from an export folder alone: name that route too, since a
    # database made with one records `resemblyzer` and later commands ask for it again.
    raise ModelError(
        "resemblyzer's GE2E weights (resemblyzer/pretrained.pt) are not installed: "
        "`pip install --no-deps resemblyzer` (making their ONNX export once also needs "
        "`pip install 'speakerdb[export]'`); or pass a folder that `speakerdb model export "
        "resemblyzer OUT` wrote on a machine that has them, to every command "
        "(--model OUT, or SPEAKERDB_MODEL=OUT; model='OUT' in Python)"
    )


def _checked(clip: np.ndarray, index: int) -> np.ndarray:
    """Return ``clip`` as float32, or raise AudioError if it cannot be embedded."""
    wav = np.asarray(clip, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise AudioError(f"clip {index} has shape {wav.shape}; pass non-empty 1-D mono audio")
    if not np.isfinite(wav).all():
        raise AudioError(f"clip {index} has NaN or infinite samples")
    return wav


def _normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raise the clip's RMS to -30 dBFS; never lower it (resemblyzer's ``increase_only``)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms == 0.0:
        return wav  # digital silence has no level to raise
    gain_db = _TARGET_DBFS - 20.0 * np.log10(rms)
    if gain_db <= 0.0:
        return wav
    return (wav * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def _gain(wav: np.ndarray, start: int, length: int) -> np.float32:
    """The linear gain :func:`_normalize_volume` applies to ``wav[start : start + length]``."""
    part = wav[start : start + length]
    rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))) if part.size else 0.0
    if rms == 0.0:
        return np.float32(1.0)
    return np.float32(10.0 ** (max(0.0, _TARGET_DBFS - 20.0 * np.log10(rms)) / 20.0))


def _trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """Shorten silences to at most about 0.2 s with webrtcvad, as resemblyzer does.

    If the VAD finds no voice at all, the clip is kept whole (resemblyzer would
    return an empty clip).
    """
    # Imported by name: an optional module, and mypy should not need its stubs.
    vad = importlib.import_module("webrtcvad").Vad(3)
    usable = wav[: len(wav) - len(wav) % _VAD_WINDOW]
    # Clip before the cast: resemblyzer's cast wraps samples beyond full scale.
    pcm = np.clip(np.round(usable * _INT16_MAX), -_INT16_MAX - 1, _INT16_MAX).astype(np.int16)
    windows = pcm.reshape(-1, _VAD_WINDOW)
    flags = np.array([vad.is_speech(w.tobytes(), SAMPLE_RATE) for w in windows], dtype=float)
    if flags.size == 0:
        return wav
    width = _VAD_AVERAGE_WIDTH
    padded = np.concatenate([np.zeros((width - 1) // 2), flags, np.zeros(width // 2)])
    voiced = np.round(np.convolve(padded, np.ones(width) / width, mode="valid")) > 0
    # Dilation by a centred window of 2 * 3 + 1 windows (scipy's binary_dilation).
    keep = np.convolve(voiced, np.ones(_VAD_MAX_SILENCE + 1), mode="same") > 0
    return usable[np.repeat(keep, _VAD_WINDOW)] if keep.any() else wav


def _partial_starts(n_samples: int) -> list[int]:
    """First frames of the 160-frame partials covering a clip (resemblyzer's slicing)."""
    n_frames = -(-(n_samples + 1) // _HOP)
    step = round(SAMPLE_RATE / _PARTIAL_RATE / _HOP)  # 77 frames
    starts = list(range(0, max(1, n_frames - _PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * _HOP) / (_PARTIAL_FRAMES * _HOP)
    if coverage < _MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def _partial_mels(padded: np.ndarray, starts: list[int]) -> np.ndarray:
    """Mel spectrograms ``(len(starts), 160, 40)`` of the partials at ``starts``.

    ``padded`` is the clip padded by ``n_fft // 2`` on each side, so frame ``t``
    is centred on sample ``t * hop``. Only the frames the partials use are computed.
    """
    first, stop = starts[0], starts[-1] + _PARTIAL_FRAMES
    segment = padded[first * _HOP : (stop - 1) * _HOP + _N_FFT]
    frames = np.lib.stride_tricks.sliding_window_view(segment, _N_FFT)[::_HOP]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = (power @ _mel_filterbank().T).astype(np.float32)
    return np.stack([mel[s - first : s - first + _PARTIAL_FRAMES] for s in starts])


@lru_cache(maxsize=1)
def _mel_filterbank() -> np.ndarray:
    """librosa's default mel filters ``(40, 201)``: Slaney mel scale, Slaney area norm, 0-8 kHz."""
    # The Slaney mel scale: linear up to 1 kHz (15 mels), logarithmic above.
    log_step = math.log(6.4) / 27.0
    mels = np.linspace(0.0, 15.0 + math.log(SAMPLE_RATE / 2 / 1000.0) / log_step, _N_MELS + 2)
    mel_hz = np.where(mels >= 15.0, 1000.0 * np.exp(log_step * (mels - 15.0)), mels * 200.0 / 3.0)
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - np.fft.rfftfreq(_N_FFT, d=1.0 / SAMPLE_RATE)[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights: np.ndarray = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


def load_ge2e(model: str, backend: str, **options: object) -> GE2EEncoder:
    """The GE2E family's loader (:mod:`speakerdb.encoders._registry`): its weights come
    with the wheel, so the hub's revision and cache options do not apply."""
    return GE2EEncoder.load(backend=backend)
