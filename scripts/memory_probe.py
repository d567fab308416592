"""Peak memory of embedding long audio, with and without 30 s windows.

Run by ``python scripts/eval_table.py --memory``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

from speakerdb.encoders import WINDOW_S

__all__ = ["memory_report"]

_TINY_MODEL = """
import sys, torch
from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor
torch.manual_seed(0)
config = UniSpeechSatConfig(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
    conv_dim=(512, 512, 512), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
    feat_extract_norm="group", num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    tdnn_dim=(16, 16, 16), tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1),
    xvector_output_dim=24, num_labels=4,
)
UniSpeechSatForXVector(config).eval().save_pretrained(sys.argv[1])
Wav2Vec2FeatureExtractor(
    feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
    return_attention_mask=True,
).save_pretrained(sys.argv[1])
"""

_MEMORY_PROBE = """
import resource, sys, numpy as np
from speakerdb.encoders import HFXVectorEncoder
from speakerdb.encoders import encode_windowed
enc = HFXVectorEncoder.load(sys.argv[1])
seconds, window = int(sys.argv[2]), float(sys.argv[3])
t = np.arange(seconds * 16000) / 16000
tone = np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
clip = (0.3 * tone).astype(np.float32)
enc.encode([clip[:16000]])  # warm up, so that the peak below is the embedding's own
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = encode_windowed(enc, [clip], window) if window else enc.encode([clip])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def memory_report() -> None:
    """Peak extra memory embedding long audio, windows on and off.

    The model is a small random x-vector model whose convolutional feature encoder
    is as wide (512 channels) as the real checkpoints': its activations over the
    raw audio are what grows with the clip's length.
    """
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", _TINY_MODEL, tmp], check=True, capture_output=True)
        for seconds in (30, 120, 300):
            for window in (0.0, WINDOW_S):
                args = [sys.executable, "-c", _MEMORY_PROBE, tmp, str(seconds), str(window)]
                out = subprocess.run(args, capture_output=True, text=True)
                lines = out.stdout.strip().splitlines()
                mb = f"{float(lines[-1]):.0f} MB" if out.returncode == 0 and lines else "failed"
                how = f"windows of {WINDOW_S:.0f} s" if window else "whole clip"
                print(f"{seconds:4d} s clip, {how:16s}: peak memory +{mb}")
