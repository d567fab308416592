"""Turning results into text and JSON for the CLI. Nothing here touches a database.

The JSON is the results' own ``to_dict()`` (:func:`speakerdb.types.to_jsonable`), so
the CLI writes the same documents as any other front end.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..types import (
    AuditEntry,
    AuditSettings,
    ClearedThreshold,
    DatabaseInfo,
    EncoderInfo,
    Enrollment,
    Identification,
    Speaker,
    Threshold,
    Utterance,
    Verification,
    to_jsonable,
)

__all__ = ["emit_json", "safe", "to_jsonable"]

_CONTROL = (
    {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
    | {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}
    # A file name's bytes that are not UTF-8 arrive as lone surrogates (U+DC80-U+DCFF):
    # shown as the escaped byte, never written raw (a raw 0x9b is a CSI to some terminals).
    | {c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)}
)
# JSON escapes C0 controls itself; these it would write raw with ensure_ascii=False.
_JSON_RAW = {c: f"\\u{c:04x}" for c in [0x7F, *range(0x80, 0xA0), *range(0xD800, 0xE000)]}


def safe(text: object) -> str:
    """Text with control characters escaped, so user data cannot drive the terminal."""
    return str(text).translate(_CONTROL)


def emit_json(value: Any) -> None:
    """Write exactly one JSON document to stdout."""
    # Serialised in full first, so a failure never leaves half a document on stdout.
    text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=2).translate(_JSON_RAW)
    sys.stdout.write(text + "\n")


def enrollment_text(result: Enrollment) -> str:
    """What an enroll call did: the clips it skipped, then one summary line."""
    name = safe(result.speaker.name)
    skipped = [
        f"skipped {safe(s or '<array>')}: enrolled for {name} already" for s in result.skipped
    ]
    if not result.added:
        summary = f"nothing to do: every clip is enrolled for {name} already"
    else:
        verb = "created" if result.created else "updated"
        summary = (
            f"{verb} {name}: +{len(result.added)} clip(s), {result.speaker.n_utterances} in all"
        )
        if result.skipped:
            summary += f"; {len(result.skipped)} enrolled already, skipped"
    return "\n".join([*skipped, summary])


def speaker_line(speaker: Speaker) -> str:
    return (
        f"{safe(speaker.name)}\t{speaker.n_utterances} clip(s)\tsince {speaker.created_at:%Y-%m-%d}"
    )


def metadata_lines(speaker: Speaker) -> list[str]:
    """The external id and attributes of ``speaker``, one per line (none when unset)."""
    lines = [] if speaker.external_id is None else [f"  external id: {safe(speaker.external_id)}"]
    if speaker.watchlist:
        lines.append("  on the watchlist: never admitted")
    if speaker.groups:
        lines.append(f"  groups: {', '.join(safe(g) for g in speaker.groups)}")
    if speaker.expires_at is not None:
        lines.append(f"  expires: {speaker.expires_at:%Y-%m-%d %H:%M} UTC")
    for key, value in sorted(speaker.attributes.items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  attribute {safe(key)} = {safe(shown)}")
    return lines


def utterance_line(utt: Utterance) -> str:
    source = safe(utt.source or "<array>")
    return f"  #{utt.id}\t{utt.duration_s:6.2f} s\t{utt.audio_sha256[:12]}\t{source}"


def identification_text(result: Identification) -> str:
    best = result.best
    label = safe(result.source or "<array>")
    if result.verdict is not None:
        head = f"{label}: {result.outcome.value} ({safe(result.reason or '')})"
    elif best is None:
        head = f"{label}: unknown (no speakers enrolled)"
    elif result.accepted:
        head = (
            f"{label}: {safe(best.speaker)} "
            f"({_score_name(result.score_norm)} {best.decision_score:.3f} >= threshold "
            f"{result.threshold:.3f})"
        )
    else:
        head = (
            f"{label}: unknown (best {safe(best.speaker)} {_score_name(result.score_norm)} "
            f"{best.decision_score:.3f} < threshold {result.threshold:.3f})"
        )
    ranks = [
        f"  {i}. {safe(m.speaker)}\t{m.score:.4f}{_normalized(result.score_norm, m.normalized)}"
        for i, m in enumerate(result.matches, 1)
    ]
    return "\n".join([head, *ranks])


def _score_name(score_norm: str) -> str:
    from ..decision._scores import get_norm

    return get_norm(score_norm).label


def _normalized(score_norm: str, normalized: float | None) -> str:
    return "" if normalized is None else f"\t{_score_name(score_norm)} {normalized:.3f}"


def verification_text(result: Verification) -> str:
    if result.verdict is not None:
        return (
            f"{result.outcome.value}: {safe(result.source or '<array>')} as "
            f"{safe(result.speaker)} ({safe(result.reason or '')}; cosine {result.score:.4f})"
        )
    verdict = "accepted" if result.accepted else "rejected"
    op = ">=" if result.accepted else "<"
    if result.normalized is not None:
        return (
            f"{verdict}: {safe(result.source or '<array>')} as {safe(result.speaker)} "
            f"({_score_name(result.score_norm)} {result.normalized:.3f} {op} threshold "
            f"{result.threshold:.3f}; "
            f"cosine {result.score:.4f})"
        )
    return (
        f"{verdict}: {safe(result.source or '<array>')} as {safe(result.speaker)} "
        f"(score {result.score:.4f} {op} threshold {result.threshold:.4f})"
    )


def encoder_text(encoder: EncoderInfo | None) -> str:
    if encoder is None:
        return "none yet (recorded at the first enrollment)"
    revision = f" @ {encoder.revision}" if encoder.revision else ""
    return f"{encoder.model}{revision} ({encoder.dim}-d, {encoder.sample_rate} Hz)"


def _decision_rows(info: DatabaseInfo) -> list[tuple[str, str]]:
    """The score that decides, each operation's threshold, and every stored threshold."""
    from ..decision._scores import get_norm

    norm = get_norm(info.score_norm)
    rows = [("decides by", decides_text(info.score_norm))]
    if not norm.decides_by_cosine:
        rows.append(("score", norm.meaning))
    if info.notice:
        rows.append(("notice", safe(info.notice)))
    rows += [
        (f"{op} threshold", f"{bar_text(t)} ({safe(t.source)}), {_score_kind(t.score)}")
        for op, t in info.thresholds.items()
    ]
    stored = [
        f"{t.operation}: {_score_kind(t.score)} {t.value:.4f}"
        + ("" if t.decides else " (not used now)")
        for t in info.stored_thresholds
    ]
    rows += [("stored" if i == 0 else "", line) for i, line in enumerate(stored)]
    return rows


def bar_text(threshold: Threshold) -> str:
    """A threshold's value, and how it falls with the query's duration where it does."""
    return falling_text(threshold.value, threshold.duration_fall)


def falling_text(value: float, fall: float) -> str:
    """A bar of ``value`` for a 0.5 s query, and how it falls by ``fall`` per
    ``ln(d / 0.5 s)`` (just the value where it does not fall)."""
    from ..encoders._registry import fallen

    if not fall:
        return f"{value:.4f}"
    at_3, at_10 = fallen(value, fall, 3.0), fallen(value, fall, 10.0)
    return (
        f"{value:.4f} for a query of 0.5 s, falling {fall:g} x ln(d / 0.5 s) for "
        f"one of d seconds ({at_3:.4f} at 3 s, {at_10:.4f} at 10 s)"
    )


def _score_kind(score: str) -> str:
    from ..decision._scores import get_norm

    return get_norm(score).score_name


def decides_text(score_norm: str) -> str:
    """The score that decides, in words: 'raw cosine' or 'margin scores'."""
    from ..decision._scores import get_norm

    return "raw cosine" if get_norm(score_norm).decides_by_cosine else f"{score_norm} scores"


def threshold_set_text(
    operation: str, value: float, before: str | None, after: DatabaseInfo
) -> str:
    """What ``set-threshold`` did: the value stored, a change of the score that decides
    (``before`` it was), and the threshold each operation now uses."""
    which = "identify and verify thresholds" if operation == "both" else f"{operation} threshold"
    lines = [f"{which} set to {value:.4f} ({_score_kind(after.score_norm)})"]
    if before is not None and before != after.score_norm:
        lines.append(
            f"queries now decide by {decides_text(after.score_norm)}, not {decides_text(before)}"
        )
    return "\n".join(lines + _deciding_lines(after))


def cleared_text(cleared: Sequence[ClearedThreshold], after: DatabaseInfo) -> str:
    """What ``set-threshold --clear`` removed, and the threshold each operation now uses."""
    lines = [
        f"cleared the {c.operation} threshold {c.value:.4f} ({_score_kind(c.score)})"
        for c in cleared
    ] or ["no threshold was stored for that: nothing cleared"]
    return "\n".join(lines + _deciding_lines(after))


def _deciding_lines(after: DatabaseInfo) -> list[str]:
    """The threshold each operation uses, one indented line each."""
    return [
        f"  {op}: {_score_kind(t.score)} >= {bar_text(t)} ({safe(t.source)})"
        for op, t in after.thresholds.items()
    ]


def info_text(info: DatabaseInfo) -> str:
    rows = [
        ("database", safe(info.path)),
        ("model", safe(encoder_text(info.encoder))),
        ("embedding size", str(info.encoder.dim) if info.encoder else "-"),
        *_decision_rows(info),
        ("speakers", str(info.n_speakers)),
        ("utterances", str(info.n_utterances)),
        ("schema revision", str(info.schema_revision)),
        ("index", f"{safe(info.index_path)}: {info.index_state}"),
        ("replay window", _window_text(info)),
        ("voiceprints", _voiceprints_text(info)),
    ]
    return "\n".join(f"{k:18s} {v}" for k, v in rows)


def _voiceprints_text(info: DatabaseInfo) -> str:
    if info.whole_clip_notice is None:
        return "embedded from the clips' words (and up to 0.5 s either side)"
    return safe(info.whole_clip_notice)


def _window_text(info: DatabaseInfo) -> str:
    return f"{window_span(info.replay_window_s)} ({info.replay_window_source})"


def window_span(seconds: int) -> str:
    """A replay window as ``info`` and ``replay-window`` show it: off, seconds or minutes."""
    return "off" if seconds == 0 else f"{seconds} s" if seconds % 60 else f"{seconds // 60} min"


def audit_settings_text(settings: AuditSettings) -> str:
    state = "on" if settings.enabled else "off"
    return (
        f"audit {state}: entries kept {settings.retention_days} days, at most {settings.max_rows}"
    )


def audit_entry_line(entry: AuditEntry) -> str:
    verdict = entry.outcome.value
    claim = f" claimed {safe(entry.claimed)}" if entry.claimed is not None else ""
    who = safe(entry.identified) if entry.identified is not None else "(no one enrolled)"
    score = "-" if entry.score is None else f"{entry.score:.4f}"
    if entry.normalized is not None:
        score += f" (normalised {entry.normalized:.3f})"  # the log does not keep which score
    asker = f"\tkey {safe(entry.api_key)}" if entry.api_key is not None else ""
    return (
        f"{entry.time:%Y-%m-%d %H:%M:%S}Z\t{entry.operation}{claim}\t{who}\t"
        f"{score} vs {entry.threshold:.4f}\t{verdict}{asker}"
    )
