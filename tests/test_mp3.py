"""MP3 clips of real speech: decoded as libsndfile decodes them in one read, with nothing
printed to stderr, through the library and the CLI.

The clips are made here from the corpus with libsndfile's MP3 encoder (LAME): long
enough to span many of the decoder's blocks, at the two rates where a seek after each
block garbled them (the bit reservoir lost at 44.1 kHz; libmpg123's "part2_3_length too
large" on stderr at 16 kHz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import test_cli
from test_cli import run_speakerdb

from speakerdb.audio import SAMPLE_RATE, load_clip
from speakerdb.audio._decode import BLOCK_FRAMES
from speakerdb.audio._recording import recording_blocks

base_home, home = test_cli.base_home, test_cli.home

#: The corpus speaker whose first clips, joined, make the MP3s (74 s of speech).
SPEAKER, CLIPS = "asterisk-allison", 20


def _mp3_supported() -> bool:
    return "MP3" in sf.available_formats()


pytestmark = pytest.mark.skipif(not _mp3_supported(), reason="libsndfile without MP3")


@pytest.fixture(scope="module")
def speech(corpus: Path) -> np.ndarray:
    paths = sorted((corpus / "wav" / SPEAKER).glob("*.wav"))[:CLIPS]
    return np.concatenate([sf.read(p, dtype="float32")[0] for p in paths])


def write_mp3(path: Path, speech: np.ndarray, rate: int) -> Path:
    samples = speech if rate == SAMPLE_RATE else soxr.resample(speech, SAMPLE_RATE, rate)
    sf.write(path, samples, rate, format="MP3")
    assert sf.info(path).frames > 10 * BLOCK_FRAMES  # many of the decoder's blocks
    return path


def decoded_at_once(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.asarray(samples, dtype=np.float32)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_an_mp3_decodes_as_in_one_read(tmp_path: Path, speech: np.ndarray, rate: int) -> None:
    path = write_mp3(tmp_path / "speech.mp3", speech, rate)
    expected = decoded_at_once(path)
    clip = load_clip(path)
    assert clip.samples.shape == expected.shape
    np.testing.assert_allclose(clip.samples, expected, atol=1e-6)
    # A recording (``segments``) is read block by block too.
    streamed = np.concatenate(list(recording_blocks(path, 5.0)))
    np.testing.assert_allclose(streamed, expected, atol=1e-6)


def test_the_cli_prints_nothing_of_the_decoders_for_a_good_mp3(
    home: Path, speech: np.ndarray
) -> None:
    mp3 = write_mp3(home / "speech.mp3", speech, SAMPLE_RATE)
    proc = run_speakerdb("identify", mp3.name, cwd=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("speech.mp3: ")
    assert proc.stderr == ""
