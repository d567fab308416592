"""Export and import: a database as one portable document (:mod:`._archivefile` is
its file format).

The document holds the encoder's identity (model, revision, embedding size, sample
rate), the decision settings (thresholds, score normalisation, index choice), every
speaker with their metadata, expiry, watchlist mark and each clip's provenance (file name, length,
audio SHA-256), how its vector was embedded (its spoken margin; none: the whole clip, as
in every archive written before) and embedding (float32, bit for bit), the groups with
their members (empty ones too), the opt-out tombstones, and the cohort of outside voices
(:mod:`speakerdb.services._cohort`: each clip's label, length, audio SHA-256 and
embedding, in the order the database holds them).
Templates are not stored: the import recomputes them from the embeddings by the
enrollment rule, so a round trip gives identical answers. Not exported: the audit
log (a record of decisions, which stays with the database it describes), the
service's keys (secrets of one deployment), and the search index (derived).

Import is one transaction: all of the archive goes in, or none of it (a refusal,
an error or a killed process leaves the database as it was). It refuses an archive
of another encoder (:class:`ModelMismatch`). A speaker whose name (or a look-alike)
is enrolled already, whose audio is, whose external id another speaker has, or
who opted out is a *duplicate*: ``on_duplicate="fail"`` (the default) refuses the
whole import naming the first, ``"skip"`` keeps the database's and reports the
archive's as skipped. Settings are taken only where the database has none of its own.
A cohort clip the database's cohort holds already (by its audio), or whose audio or
label is an enrolled speaker's, is left out: a cohort holds outside voices only.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from .._metadata import clean_attributes, clean_external_id
from .._names import clean_group, clean_name, name_keys
from ..audio._decode import SAMPLE_RATE, Clip
from ..encoders._base import check_same_encoder
from ..errors import InputError, SpeakerDBError
from ..types import EncoderInfo

if TYPE_CHECKING:
    from pathlib import Path

    from ..storage import Change, Snapshot

__all__ = [
    "ON_DUPLICATE",
    "Archive",
    "ArchivedSpeaker",
    "build_document",
    "import_archive",
    "parse_document",
]

FORMAT = "speakerdb-archive"
VERSION = 1
ON_DUPLICATE = ("fail", "skip")
# The settings that travel: the decision's and the index choice's, never counters.
_SETTINGS = ("threshold", "score_norm", "asnorm_top_n", "index_kind", "index_ivf_from")


@dataclass(frozen=True)
class ArchivedSpeaker:
    name: str
    external_id: str | None
    attributes: dict[str, Any]
    expires_at: datetime | None
    watchlist: bool
    clips: tuple[Clip, ...]  # provenance only: no samples (see _clip)
    embeddings: np.ndarray
    last_match_at: datetime | None = None


@dataclass(frozen=True)
class ArchivedCohort:
    """The cohort's clips, in order: labels, provenance (no samples) and embeddings."""

    labels: tuple[str, ...] = ()
    clips: tuple[Clip, ...] = ()
    embeddings: np.ndarray | None = None


@dataclass(frozen=True)
class Archive:
    encoder: EncoderInfo
    settings: dict[str, str]
    speakers: tuple[ArchivedSpeaker, ...]
    tombstones: tuple[tuple[str | None, str, str], ...]  # external id, name keys
    cohort: ArchivedCohort = ArchivedCohort()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # name, members' names


# -- export ----------------------------------------------------------------------------


def build_document(snapshot: Snapshot) -> tuple[bytes, tuple[int, int, int, int]]:
    """The document of everything ``snapshot`` holds; and its counts of speakers, clips,
    tombstones and cohort clips."""
    encoder = snapshot.encoder()
    if encoder is None:
        raise InputError("the database holds no speakers yet: nothing to export")
    population = snapshot.population()
    speakers = [_speaker_doc(snapshot, s, population.of(s.name)) for s in snapshot.speakers()]
    tombstones = [
        {"external_id": t.external_id, "name_key": t.name_key, "folded_key": t.folded_key}
        for t in snapshot.tombstones()
    ]
    settings = snapshot.settings()
    cohort = _cohort_doc(snapshot)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "encoder": encoder.to_dict(),
        "settings": {k: v for k, v in settings.items() if _travels(k)},
        "speakers": speakers,
        "groups": [{"name": g.name, "members": list(g.members)} for g in snapshot.groups()],
        "tombstones": tombstones,
        "cohort": cohort,
    }
    clips = sum(len(s["clips"]) for s in speakers)
    return json.dumps(document, ensure_ascii=False).encode(), (
        len(speakers),
        clips,
        len(tombstones),
        len(cohort),
    )


def _cohort_doc(snapshot: Snapshot) -> list[dict[str, Any]]:
    cohort = snapshot.cohort()
    return [
        {
            "label": label,
            "audio_sha256": sha,
            "duration_s": float(seconds),
            "embedding": _b64_vector(vector),
        }
        for label, sha, seconds, vector in zip(
            cohort.labels, cohort.hashes, cohort.durations_s, cohort.embeddings, strict=True
        )
    ]


def _b64_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")


def _travels(key: str) -> bool:
    # Thresholds: per operation and score ("threshold:identify:none"), and older spellings.
    return key in _SETTINGS or key.startswith("threshold:") or key.endswith("_threshold")


def _speaker_doc(snapshot: Snapshot, speaker: Any, embeddings: np.ndarray) -> dict[str, Any]:
    clips = [
        {
            "source": u.source,
            "audio_sha256": u.audio_sha256,
            "duration_s": u.duration_s,
            "spoken_margin_s": u.spoken_margin_s,
            "embedding": _b64_vector(e),
        }
        for u, e in zip(snapshot.utterances(speaker.name), embeddings, strict=True)
    ]
    expires = speaker.expires_at.isoformat() if speaker.expires_at is not None else None
    matched = speaker.last_match_at.isoformat() if speaker.last_match_at is not None else None
    return {
        "name": speaker.name,
        "external_id": speaker.external_id,
        "attributes": speaker.attributes,
        "expires_at": expires,
        "watchlist": speaker.watchlist,
        "last_match_at": matched,
        "clips": clips,
    }


# -- reading an archive's document -----------------------------------------------------


def parse_document(path: Path, document: bytes) -> Archive:
    """The checked content of an archive's document; :class:`InputError` naming the
    first thing that is not as :func:`build_document` writes it."""
    try:
        data = json.loads(document)
        _need(isinstance(data, dict) and data.get("format") == FORMAT, "not an export")
        _need(data.get("version") == VERSION, f"format version {data.get('version')!r}")
        encoder = _encoder(data["encoder"])
        speakers = tuple(_speaker(s, encoder.dim, i) for i, s in enumerate(data["speakers"]))
        tombstones = tuple(_tombstone(t) for t in data["tombstones"])
        settings = _settings(data["settings"])
        cohort = _cohort(data.get("cohort", []), encoder.dim)  # none before it was exported
        # Archives written before groups existed have none.
        groups = _groups(data.get("groups", []), {s.name for s in speakers})
    except _Bad as exc:
        raise InputError(f"{path}: the archive is not valid: {exc}") from None
    except (KeyError, TypeError, ValueError, SpeakerDBError) as exc:
        raise InputError(
            f"{path}: the archive is not valid ({type(exc).__name__}: {exc})"
        ) from None
    return Archive(encoder, settings, speakers, tombstones, cohort, groups)


class _Bad(Exception):
    pass


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise _Bad(what)


def _encoder(data: dict[str, Any]) -> EncoderInfo:
    info = EncoderInfo(
        str(data["model"]), data["revision"], int(data["dim"]), int(data["sample_rate"])
    )
    _need(0 < info.dim <= 65536 and info.sample_rate == SAMPLE_RATE, "the encoder's description")
    _need(info.revision is None or isinstance(info.revision, str), "the encoder's revision")
    return info


def _speaker(data: dict[str, Any], dim: int, at: int) -> ArchivedSpeaker:
    name = clean_name(data["name"])
    clips = data["clips"]
    _need(isinstance(clips, list) and bool(clips), f"speaker #{at} has no clips")
    vectors = np.stack([_vector(c["embedding"], dim, f"speaker #{at}") for c in clips])
    external = data["external_id"]
    expires = data["expires_at"]
    watchlist = data.get("watchlist", False)
    _need(isinstance(watchlist, bool), f"speaker #{at}: the watchlist mark")
    matched = data.get("last_match_at")  # (none before idle expiry)
    return ArchivedSpeaker(
        name=name,
        external_id=None if external is None else clean_external_id(external),
        attributes=clean_attributes(data["attributes"]),
        expires_at=None if expires is None else _aware(datetime.fromisoformat(expires)),
        watchlist=watchlist,
        clips=tuple(_clip(c, f"speaker #{at}") for c in clips),
        embeddings=vectors,
        last_match_at=None if matched is None else _aware(datetime.fromisoformat(matched)),
    )


def _cohort(data: list[dict[str, Any]], dim: int) -> ArchivedCohort:
    _need(isinstance(data, list), "the cohort")
    if not data:
        return ArchivedCohort()
    where = [f"cohort clip #{i}" for i in range(len(data))]
    return ArchivedCohort(
        tuple(clean_name(c["label"]) for c in data),
        tuple(_clip({"source": None, **c}, w) for c, w in zip(data, where, strict=True)),
        np.stack([_vector(c["embedding"], dim, w) for c, w in zip(data, where, strict=True)]),
    )


def _vector(text: str, dim: int, where: str) -> np.ndarray:
    raw = base64.b64decode(text, validate=True)
    _need(len(raw) == 4 * dim, f"{where}: an embedding of {len(raw)} bytes, not {4 * dim}")
    vector = np.frombuffer(raw, "<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else math.nan
    _need(abs(norm - 1.0) < 1e-3, f"{where}: an embedding that is not a unit vector")
    return vector


def _clip(data: dict[str, Any], where: str) -> Clip:
    sha = data["audio_sha256"]
    seconds = float(data["duration_s"])
    _need(isinstance(sha, str) and len(sha) == 64 and _hex(sha), f"{where}: an audio hash")
    _need(0 < seconds < 86_400, f"{where}: a clip length of {seconds} s")
    source = data["source"]
    _need(source is None or isinstance(source, str), f"{where}: a clip's file name")
    # Storage keeps only a clip's provenance; its length is that of the samples, so
    # the samples are a zero-copy view of the right length that holds no memory.
    samples = np.broadcast_to(np.float32(0.0), (round(seconds * SAMPLE_RATE),))
    return Clip(samples, source, sha, spoken_margin_s=_margin(data, where))


def _margin(data: dict[str, Any], where: str) -> float | None:
    """How the clip's vector was embedded (:attr:`Clip.spoken_margin_s`); an archive
    written before speakerdb cut clips to their words has none: its vectors are of whole
    clips."""
    margin = data.get("spoken_margin_s")
    if margin is None:
        return None
    _need(
        isinstance(margin, (int, float)) and not isinstance(margin, bool) and 0 <= margin <= 60,
        f"{where}: a spoken margin",
    )
    return float(margin)


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _tombstone(data: dict[str, Any]) -> tuple[str | None, str, str]:
    external, written, folded = data["external_id"], data["name_key"], data["folded_key"]
    _need(isinstance(written, str) and isinstance(folded, str), "a tombstone's keys")
    _need(len(written) <= 1024 and len(folded) <= 1024, "a tombstone's keys")
    return (None if external is None else clean_external_id(external), written, folded)


def _groups(data: Any, speakers: set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    _need(isinstance(data, list), "the groups")
    groups = []
    for at, group in enumerate(data):
        members = group["members"]
        _need(isinstance(members, list), f"group #{at}'s members")
        names = tuple(clean_name(m) for m in members)
        _need(set(names) <= speakers, f"group #{at} names a speaker the archive does not hold")
        groups.append((clean_group(group["name"]), names))
    return tuple(groups)


def _settings(data: dict[str, Any]) -> dict[str, str]:
    _need(isinstance(data, dict), "the settings")
    settings = {str(k): str(v) for k, v in data.items() if _travels(str(k))}
    from .._stored import StoredSettings

    StoredSettings.parse(settings)  # a DatabaseError names a bad value
    return settings


def _aware(moment: datetime) -> datetime:
    _need(moment.tzinfo is not None, "a time without a time zone")
    return moment.astimezone(timezone.utc)


# -- import ----------------------------------------------------------------------------


def import_archive(
    change: Change, path: Path, archive: Archive, on_duplicate: str
) -> tuple[list[str], list[str]]:
    """Write ``archive`` in ``change`` (a templates change); return the names imported
    and those skipped as duplicates. Raises on the first duplicate under ``"fail"``."""
    stored = change.encoder()
    if stored is None:
        change.record_encoder(archive.encoder)
    else:
        check_same_encoder(path, stored, archive.encoder)
    imported, skipped = [], []
    for speaker, problem in _checked(change, archive):
        if problem is not None:
            if on_duplicate == "fail":
                raise problem
            skipped.append(speaker.name)
            continue
        change.enroll(speaker.name, speaker.clips, speaker.embeddings)
        attributes, expires = speaker.attributes, speaker.expires_at
        if speaker.external_id is not None or attributes or expires is not None:
            change.set_metadata(speaker.name, speaker.external_id, attributes, expires)
        if speaker.watchlist:
            change.set_watchlist(speaker.name, True)
        if speaker.last_match_at is not None:  # idleness goes on counting as it was
            change.set_last_match(speaker.name, speaker.last_match_at)
        imported.append(speaker.name)
    _import_groups(change, archive, set(imported))
    _import_tombstones(change, archive)
    _import_cohort(change, archive.cohort)
    current = change.settings()
    for key, value in archive.settings.items():
        if key not in current:
            change.set_setting(key, value)
    return imported, skipped


def _checked(
    change: Change, archive: Archive
) -> Iterator[tuple[ArchivedSpeaker, SpeakerDBError | None]]:
    """Each archived speaker, with why it is a duplicate (``None`` when it is not)."""
    from ..errors import DuplicateSpeaker, DuplicateUtterance

    keys = [name_keys(n) for n in change.names()]
    written, folded = {k[0] for k in keys}, {k[1] for k in keys}
    taken = _enrolled(change, [c.sha256 for s in archive.speakers for c in s.clips])
    opted_out = bool(change.tombstones())
    for speaker in archive.speakers:
        key = name_keys(speaker.name)
        problem: SpeakerDBError | None = None
        if key[0] in written or key[1] in folded:
            problem = DuplicateSpeaker(
                f"speaker {speaker.name!r} (or a look-alike) is in the database already; "
                "--on-duplicate skip keeps the database's"
            )
        elif any(c.sha256 in taken for c in speaker.clips):
            problem = DuplicateUtterance(
                f"a clip of {speaker.name!r} is enrolled in the database already; "
                "--on-duplicate skip leaves them out"
            )
        elif speaker.external_id and change.speaker_by_external_id(speaker.external_id):
            problem = DuplicateSpeaker(
                f"external id {speaker.external_id!r} of {speaker.name!r} belongs to a "
                "speaker of the database; --on-duplicate skip leaves them out"
            )
        elif opted_out:
            problem = _opted_out(change, speaker)
        if problem is None:
            written.add(key[0])
            folded.add(key[1])
        yield speaker, problem


def _enrolled(change: Change, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` enrolled as a speaker's clip."""
    # In slices: SQLite takes at most 32766 parameters in one statement.
    return {
        h
        for i in range(0, len(hashes), 10_000)
        for h in change.enrolled_hashes(hashes[i : i + 10_000])
    }


def _opted_out(change: Change, speaker: ArchivedSpeaker) -> SpeakerDBError | None:
    from ._retention import refuse_opted_out

    try:
        refuse_opted_out(change, speaker.name, speaker.external_id)
    except SpeakerDBError as exc:
        return exc
    return None


def _import_groups(change: Change, archive: Archive, imported: set[str]) -> None:
    """The archive's groups, with those of their members it imported: a skipped speaker
    is the database's, who may be another person of the same name."""
    for name, members in archive.groups:
        change.add_to_group(name, [m for m in members if m in imported])


def _import_tombstones(change: Change, archive: Archive) -> None:
    known = {(t.external_id, t.name_key, t.folded_key) for t in change.tombstones()}
    for external_id, written, folded in archive.tombstones:
        if (external_id, written, folded) not in known:
            change.add_tombstone(external_id, (written, folded))
            known.add((external_id, written, folded))


def _import_cohort(change: Change, cohort: ArchivedCohort) -> int:
    """Add the archive's cohort clips that are outside voices of this database, in
    their order (runs of one label at a time); return how many were added."""
    if cohort.embeddings is None:
        return 0
    enrolled = _enrolled(change, [c.sha256 for c in cohort.clips])
    names = change.names()
    keep = [
        i
        for i, (label, clip) in enumerate(zip(cohort.labels, cohort.clips, strict=True))
        if clip.sha256 not in enrolled and label not in names
    ]
    added = 0
    for start, stop in _runs([cohort.labels[i] for i in keep]):
        rows = keep[start:stop]
        label = cohort.labels[rows[0]]
        added += change.add_cohort(label, [cohort.clips[i] for i in rows], cohort.embeddings[rows])
    return added


def _runs(labels: list[str]) -> Iterator[tuple[int, int]]:
    """The ``[start, stop)`` spans of equal neighbouring labels."""
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            yield start, i
            start = i
