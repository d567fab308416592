#!/usr/bin/env python3
"""Embedding speed and fidelity of each x-vector backend, against the model card, in one run.

    python scripts/bench_encoder.py                    # about 10 min on 2 busy cores
    python scripts/bench_encoder.py --repeats 3 --sections table,long --long 30,60
    python scripts/bench_encoder.py --model DIR        # a saved model instead

The model is the default model's architecture (UniSpeechSatForXVector, base size:
768 hidden, 12 layers, the sv checkpoint's TDNN, 512-d x-vectors) with random
weights, saved with save_pretrained into a temporary folder and loaded back
through speakerdb's normal ``--model DIR`` path; its ONNX export is built into a
temporary cache in this run (the one-off cost is printed).

Clips are real speech of 2-10 s from the shared corpus (synthetic voices without
it). For every repeat, each clip goes through every path in turn (the order
rotating), so that the load of a shared machine falls on all paths alike:

- ``model card``: AutoFeatureExtractor + AutoModelForAudioXVector, fp32, one
  clip per call under ``torch.no_grad()``, as the model card does;
- ``torch``, ``onnx``, ``openvino-bf16``, ``torch-bf16``: speakerdb's backends,
  through ``encode()`` (the bf16 ones where the CPU has bf16 instructions).

Each repeat shortens every clip by 10 ms, so that no path sees a length twice, as
with real queries (``--fixed-lengths`` repeats the same clips instead).

Printed: throughput (x realtime), its ratio to the model card within each repeat
(median over repeats), and fidelity: the cosine of each clip's embedding to the
model card's, raw and centred (the model card's mean embedding over the clips
subtracted from both; with random weights every raw cosine is near 1). Then long
clips (memory bounded, cost linear) and the top-1 agreement of each fast path with
fp32 on the corpus protocol (with random weights top-1 accuracy means nothing, but
whether bf16 changes any decision does), and the same for the GE2E encoder's real
weights run in bf16 by OpenVINO (``top1-ge2e``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))
RATE = 16_000


def build_model(folder: Path) -> Path:
    """The default model's architecture with random weights, saved as users save theirs."""
    import torch
    from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = UniSpeechSatConfig(  # base size; the sv checkpoint's x-vector head
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        conv_bias=False,
        tdnn_dim=(512, 512, 512, 512, 1500),
        tdnn_kernel=(5, 3, 3, 1, 1),
        tdnn_dilation=(1, 2, 3, 1, 1),
        xvector_output_dim=512,
    )
    UniSpeechSatForXVector(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=RATE,
        padding_value=0.0,
        do_normalize=False,
        return_attention_mask=True,
    ).save_pretrained(folder)
    return folder


def corpus_rows(name: str) -> list[dict[str, str]]:
    path = CORPUS / ("manifest.csv" if name == "manifest" else f"protocol/{name}.csv")
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def bench_clips(count: int) -> tuple[list[np.ndarray], str]:
    """``count`` clips of 2-10 s: real speech round-robin over speakers, else synthetic."""
    from speakerdb.audio import load_clip

    by_speaker: dict[str, list[str]] = {}
    for row in corpus_rows("manifest"):
        if 2.0 <= float(row["duration_s"]) <= 10.0:
            by_speaker.setdefault(row["speaker_id"], []).append(row["path"])
    paths = [p for group in zip(*by_speaker.values()) for p in group][:count]
    if len(paths) == count:
        return [load_clip(p).samples for p in paths], "real speech from the shared corpus"
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        t = np.arange(int(rng.uniform(2, 10) * RATE)) / RATE
        wave = sum(np.sin(2 * np.pi * (90 + 15 * i) * k * t) / k for k in range(1, 8))
        clips.append((0.3 * wave / np.max(np.abs(wave))).astype(np.float32))
    return clips, "synthetic voices (no corpus found)"


class ModelCard:
    """The model card's computation: feature extractor + model, fp32, one clip per call."""

    def __init__(self, model: str) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

        self.features = AutoFeatureExtractor.from_pretrained(model)
        self.model = AutoModelForAudioXVector.from_pretrained(model).eval()

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        import torch

        out = []
        for clip in clips:
            inputs = self.features(clip, sampling_rate=RATE, return_tensors="pt")
            with torch.no_grad():
                vector = self.model(**inputs).embeddings
            out.append(torch.nn.functional.normalize(vector, dim=-1)[0].numpy())
        return np.stack(out)


def load_path(name: str, model: str, threads: int) -> object:
    from speakerdb.encoders import load_encoder, load_onnx_encoder

    if name == "model card":
        return ModelCard(model)
    if name in ("onnx", "openvino-bf16"):  # held to --threads, as torch is
        runtime = "onnxruntime" if name == "onnx" else "openvino-bf16"
        return load_onnx_encoder(model, required=True, threads=threads, runtime=runtime)
    return load_encoder(model, backend=name)


def centred_cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    mean = reference.mean(axis=0)
    a, b = vectors - mean, reference - mean
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def throughput_table(model: str, names: list[str], args: argparse.Namespace) -> None:
    clips, what = bench_clips(args.clips)
    seconds = sum(len(c) for c in clips) / RATE
    print(f"\n{len(clips)} clips, {seconds:.1f} s of {what}, {args.threads} threads\n")
    paths = {}
    for name in names:
        start = time.perf_counter()
        paths[name] = load_path(name, model, args.threads)
        print(f"  load {name:13s} {time.perf_counter() - start:6.2f} s")
        paths[name].encode([clips[0][:-80]])  # type: ignore[attr-defined]
    took: dict[str, list[float]] = {n: [] for n in names}
    embeddings: dict[str, np.ndarray] = {}
    for rep in range(args.repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        spent = dict.fromkeys(names, 0.0)
        vectors: dict[str, list[np.ndarray]] = {n: [] for n in names}
        # Unless --fixed-lengths, each repeat shortens every clip by 10 ms, so that every
        # call sees a length new to it, as real queries do: OpenVINO prepares its kernels
        # for each new input shape (20-30 ms for the base-size model here).
        cut = 0 if args.fixed_lengths else 160 * rep
        batch = [clip[: len(clip) - cut] for clip in clips]
        seconds = sum(len(c) for c in batch) / RATE
        for clip in batch:
            for name in order:
                start = time.perf_counter()
                vectors[name].append(paths[name].encode([clip])[0])  # type: ignore[attr-defined]
                spent[name] += time.perf_counter() - start
        for name in names:
            took[name].append(spent[name] / seconds)  # seconds per second of audio
        embeddings = {n: np.stack(v).astype(np.float64) for n, v in vectors.items()}
        print(f"  repeat {rep + 1}: " + ", ".join(f"{n} {seconds / spent[n]:.1f}x" for n in names))
    reference = embeddings["model card"]
    print(
        f"\n{'path':13s} {'x realtime':>10s} {'vs card':>8s} {'min cos':>10s} "
        f"{'1 - min cos':>11s} {'min centred':>11s} {'median centred':>14s}"
    )
    for name in names:
        ratio = statistics.median(b / t for b, t in zip(took["model card"], took[name]))
        raw = np.sum(embeddings[name] * reference, axis=1)
        centred = centred_cosines(embeddings[name], reference)
        print(
            f"{name:13s} {1 / statistics.median(took[name]):10.1f} {ratio:7.2f}x "
            f"{raw.min():10.7f} {1 - raw.min():11.1e} {centred.min():11.5f} "
            f"{np.median(centred):14.5f}"
        )


LONG_PROBE = """
import json, statistics, sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[5]))
from bench_encoder import load_path
from speakerdb.encoders import encode_windowed
encoder = load_path(sys.argv[3], sys.argv[2], int(sys.argv[5]))
clip = np.load(sys.argv[4])
window = clip[: 30 * 16000]
encoder.encode([clip[: 3 * 16000]])
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from here
ratios, took = [], []
for _ in range(2):  # the long clip against one 30 s window, alternately: drift cancels
    start = time.perf_counter()
    encode_windowed(encoder, [clip])
    took.append(time.perf_counter() - start)
    start = time.perf_counter()
    encode_windowed(encoder, [window])
    ratios.append(took[-1] / (time.perf_counter() - start))
result = {"took": min(took), "vs_window": statistics.median(ratios)}
print(json.dumps({**result, "peak_extra_mb": status("VmHWM") - before}))
"""


def long_clips(model: str, args: argparse.Namespace) -> None:
    lengths = [int(s) for s in args.long.split(",") if s]
    pieces, _ = bench_clips(40)
    speech = np.concatenate(pieces)
    print(f"\nlong clips (windows of 30 s, {args.threads} threads), backends {args.long_backends}")
    print("linear cost: time of the clip / time of one 30 s window = length / 30 s")
    header = ("backend", "length", "s per s audio", "x realtime", "vs 30 s", "length/30")
    header += ("peak +MB",)
    print("{:13s} {:>7s} {:>14s} {:>10s} {:>8s} {:>9s} {:>9s}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.long_backends.split(","):
            for length in lengths:
                clip = np.tile(speech, int(np.ceil(length * RATE / len(speech))))[: length * RATE]
                np.save(f"{tmp}/clip.npy", clip)
                probe = [sys.executable, "-c", LONG_PROBE, str(ROOT / "scripts"), model, backend]
                done = subprocess.run(
                    [*probe, f"{tmp}/clip.npy", str(args.threads)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                per = result["took"] / length
                print(
                    f"{backend:13s} {length:6d}s {per:14.4f} {1 / per:10.1f} "
                    f"{result['vs_window']:8.2f} {length / 30:9.2f} {result['peak_extra_mb']:9.0f}"
                )


def fast_paths() -> list[str]:
    """The bf16 backends this CPU and install can run."""
    from speakerdb.encoders import bf16_available, bf16_supported
    from speakerdb.errors import ModelError

    fast = ["torch-bf16"] if bf16_supported() else []
    try:
        fast = ["openvino-bf16", *fast] if bf16_available() else fast
    except ModelError as exc:  # OpenVINO not installed
        print(f"openvino-bf16 not measured: {exc}")
    if not fast:
        print("this CPU has no bf16 instructions (AVX512-BF16, AMX): no fast path measured")
    return fast


def ge2e_bf16_encoders(threads: int) -> tuple[object, object]:
    """The GE2E encoder (real weights) in fp32, and its network compiled by OpenVINO in bf16.

    speakerdb runs GE2E in fp32 whatever the backend (bf16 gains it nothing); this pair
    is the one check here of what bf16 arithmetic does to decisions of trained weights.
    """
    from speakerdb.config import cache_root
    from speakerdb.encoders import open_openvino
    from speakerdb.encoders._ge2e import GE2EEncoder

    fp32 = GE2EEncoder.load(backend="onnx")  # builds the export in this run's cache
    export = next((cache_root() / "onnx").glob("ge2e-*.onnx"))
    compiled = open_openvino(export, threads)
    return fp32, GE2EEncoder(compiled.run, fp32.info.revision or "", trim_silences=False)


def top1_agreement(model: str, backend: str, args: argparse.Namespace) -> None:
    """Identify every test clip of the corpus protocol with fp32 and with bf16 templates."""
    enroll, test = usable(corpus_rows("enroll")), usable(corpus_rows("test"))
    if not enroll or not test:
        print("\ntop-1: no corpus protocol found, skipped")
        return
    if model == "resemblyzer":
        fp32, bf16 = ge2e_bf16_encoders(args.threads)
        backend = "GE2E (real weights) in OpenVINO bf16"
    else:
        fp32 = load_path("onnx", model, args.threads)
        bf16 = load_path(backend, model, args.threads)
    clips = [r["samples"] for r in enroll + test]
    names = sorted({r["speaker_id"] for r in enroll})
    results = {}
    for label, encoder in (("fp32", fp32), ("bf16", bf16)):
        vectors = encoder.encode(clips)  # type: ignore[attr-defined]
        templates = np.stack(
            [
                vectors[[i for i, r in enumerate(enroll) if r["speaker_id"] == n]].mean(axis=0)
                for n in names
            ]
        )
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        results[label] = (vectors[len(enroll) :] @ templates.T, vectors)
    top = {k: v[0].argmax(axis=1) for k, v in results.items()}
    same = top["fp32"] == top["bf16"]
    mixed = results["fp32"][1][len(enroll) :] @ _templates(results["bf16"][1], enroll, names).T
    shift = np.abs(mixed - results["fp32"][0]).max()
    # With random weights most clips are near-ties; a decision bf16 could not flip is
    # one whose fp32 margin exceeds twice the largest change bf16 made to any score.
    change = np.abs(results["bf16"][0] - results["fp32"][0]).max()
    centred = centred_cosines(results["bf16"][1], results["fp32"][1])
    best_two = np.sort(results["fp32"][0], axis=1)[:, -2:]
    clear = best_two[:, 1] - best_two[:, 0] > 2 * change
    print(
        f"\ntop-1 on the corpus protocol ({len(enroll)} enrollment clips, {len(test)} tests, "
        f"{len(names)} speakers): {backend} agrees with fp32 on {int(same.sum())}/{len(test)}; "
        f"on the {int(clear.sum())} whose fp32 margin exceeds twice bf16's largest score "
        f"change ({change:.4f}): {int(same[clear].sum())}/{int(clear.sum())}; "
        f"largest score change from bf16 templates with fp32 queries: {shift:.4f}; "
        f"centred cosine to fp32 over all {len(clips)} clips: min {centred.min():.5f}, "
        f"median {np.median(centred):.5f}"
    )


def usable(rows: list[dict]) -> list[dict]:
    """The rows whose clip speakerdb accepts (the corpus has a few silent ones), decoded."""
    from speakerdb.audio import load_clip
    from speakerdb.errors import AudioError

    out = []
    for row in rows:
        with contextlib.suppress(AudioError):
            out.append({**row, "samples": load_clip(row["path"]).samples})
    return out


def _templates(vectors: np.ndarray, enroll: list[dict[str, str]], names: list[str]) -> np.ndarray:
    rows = [vectors[[i for i, r in enumerate(enroll) if r["speaker_id"] == n]] for n in names]
    out = np.stack([r.mean(axis=0) for r in rows])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a saved x-vector model folder (default: build one)")
    parser.add_argument("--threads", type=int, default=2, help="threads per path")
    parser.add_argument("--clips", type=int, default=12, help="clips in the throughput table")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the throughput table")
    parser.add_argument("--long", default="30,60,120,300", help="long clip lengths, s")
    parser.add_argument("--long-backends", default="onnx,torch")
    parser.add_argument(
        "--fixed-lengths",
        action="store_true",
        help="repeat the same clips (as a device that always records 3 s would)",
    )
    parser.add_argument(
        "--sections",
        default="table,long,top1,top1-ge2e",
        help="what to run, comma-separated: table, long, top1, top1-ge2e",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SPEAKERDB_CACHE_DIR", f"{tmp}/cache")
        model = args.model or str(build_model(Path(tmp) / "model"))
        fast = fast_paths()
        names = ["model card", "torch", "onnx", *fast]
        sections = args.sections.split(",")
        if "table" in sections:
            throughput_table(model, names, args)
        if "long" in sections and args.long:
            long_clips(model, args)
        if "top1" in sections:
            for name in fast:
                top1_agreement(model, name, args)
        if "top1-ge2e" in sections and "openvino-bf16" in fast:
            top1_agreement("resemblyzer", "openvino-bf16", args)


if __name__ == "__main__":
    main()
