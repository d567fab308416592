"""Turning results into text and JSON for the CLI. Nothing here touches a database."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import Any

from .types import DatabaseInfo, EncoderInfo, Identification, Speaker, Utterance, Verification

__all__ = ["emit_json", "safe", "to_jsonable"]

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {
    c: f"\\x{c:02x}" for c in range(0x80, 0xA0)
}


def safe(text: object) -> str:
    """Text with control characters escaped, so user data cannot drive the terminal."""
    return str(text).translate(_CONTROL)


def to_jsonable(value: Any) -> Any:
    """Results as plain JSON values; properties a user relies on are included."""
    if isinstance(value, Identification):
        return {
            "source": value.source,
            "speaker": value.speaker,
            "accepted": value.accepted,
            "threshold": value.threshold,
            "best": to_jsonable(value.best),
            "matches": [to_jsonable(m) for m in value.matches],
        }
    if isinstance(value, Verification):
        return {**_fields(value), "accepted": value.accepted}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}


def emit_json(value: Any) -> None:
    """Write exactly one JSON document to stdout."""
    # Serialised in full first, so a failure never leaves half a document on stdout.
    text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)
    sys.stdout.write(text + "\n")


def speaker_line(speaker: Speaker) -> str:
    return (
        f"{safe(speaker.name)}\t{speaker.n_utterances} clip(s)\tsince {speaker.created_at:%Y-%m-%d}"
    )


def utterance_line(utt: Utterance) -> str:
    source = safe(utt.source or "<array>")
    return f"  #{utt.id}\t{utt.duration_s:6.2f} s\t{utt.audio_sha256[:12]}\t{source}"


def identification_text(result: Identification) -> str:
    best = result.best
    label = safe(result.source or "<array>")
    if best is None:
        head = f"{label}: unknown (no speakers enrolled)"
    elif result.accepted:
        head = (
            f"{label}: {safe(best.speaker)} "
            f"(score {best.score:.3f} >= threshold {result.threshold:.3f})"
        )
    else:
        head = (
            f"{label}: unknown (best {safe(best.speaker)} {best.score:.3f} "
            f"< threshold {result.threshold:.3f})"
        )
    ranks = [f"  {i}. {safe(m.speaker)}\t{m.score:.4f}" for i, m in enumerate(result.matches, 1)]
    return "\n".join([head, *ranks])


def verification_text(result: Verification) -> str:
    verdict = "accepted" if result.accepted else "rejected"
    op = ">=" if result.accepted else "<"
    return (
        f"{verdict}: {safe(result.source or '<array>')} as {safe(result.speaker)} "
        f"(score {result.score:.4f} {op} threshold {result.threshold:.4f})"
    )


def encoder_text(encoder: EncoderInfo | None) -> str:
    if encoder is None:
        return "none yet (recorded at the first enrollment)"
    revision = f" @ {encoder.revision}" if encoder.revision else ""
    return f"{encoder.model}{revision} ({encoder.dim}-d, {encoder.sample_rate} Hz)"


def info_text(info: DatabaseInfo) -> str:
    rows = [
        ("database", safe(info.path)),
        ("model", safe(encoder_text(info.encoder))),
        ("embedding size", str(info.encoder.dim) if info.encoder else "-"),
        ("threshold", f"{info.threshold:.4f} ({info.threshold_source})"),
        ("speakers", str(info.n_speakers)),
        ("utterances", str(info.n_utterances)),
        ("schema revision", str(info.schema_revision)),
        ("index", f"{safe(info.index_path)}: {info.index_state}"),
    ]
    return "\n".join(f"{k:16s} {v}" for k, v in rows)
