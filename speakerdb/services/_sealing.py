"""Kept enrollment audio, sealed: what ``enroll --keep-audio`` stores so that
``speakerdb reembed`` can embed the clips again with another model.

What is kept: each clip's decoded samples (16 kHz mono float32, exactly those that
were embedded and hashed), nothing else; its file name and hash stay in the
utterance as before. How: encrypted with AES-256-GCM (``cryptography``) under a key
derived by HKDF-SHA256 from the secret in ``SPEAKERDB_AUDIO_KEY`` or the file given
with ``--audio-key-file`` (at least 32 characters; ``openssl rand -hex 32`` makes
one), a random nonce per clip, and the clip's audio hash as associated data, so a
sealed clip cannot be passed off as another's. The storage sees only the sealed
bytes and a key id (a digest of the key, which does not reveal it); the secret is
never stored. A database keeps all its audio under one key (the ``audio_key_id``
setting): another key is refused with the id of the right one.

For how long: as long as the clip. Removing it or its speaker (remove, opt-out,
expiry, idle expiry) deletes its audio in the same transaction
(:mod:`speakerdb.storage._kept`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio._decode import Clip
from ..config import ENV_AUDIO_KEY
from ..errors import DatabaseError, InputError

if TYPE_CHECKING:
    from ..storage import Change, Snapshot
    from ..storage._kept import KeptAudio
    from ..types import Utterance

__all__ = ["MIN_SECRET_CHARS", "NO_KEY_FIX", "AudioKey", "KeyChoice"]

#: The shortest secret accepted: 32 characters (``openssl rand -hex 32`` gives 64).
MIN_SECRET_CHARS = 32
#: How to give a key, for messages.
NO_KEY_FIX = (
    f"set {ENV_AUDIO_KEY} or give --audio-key-file FILE (at least {MIN_SECRET_CHARS} random "
    "characters; make one with `openssl rand -hex 32 > audio.key`, and keep it safe: "
    "without it the kept audio cannot be read)"
)
_MAGIC = b"SDBA1"
_INFO = b"speakerdb kept audio v1"
_SETTING = "audio_key_id"


@dataclass(frozen=True, eq=False)
class AudioKey:
    """A key that seals and opens kept audio; ``key_id`` names it without revealing it."""

    key_id: str
    _aead: Any

    @classmethod
    def from_secret(cls, secret: bytes | str) -> AudioKey:
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        raw = raw.strip()
        if len(raw) < MIN_SECRET_CHARS:
            raise InputError(
                f"the audio key has {len(raw)} characters, fewer than {MIN_SECRET_CHARS}; "
                + NO_KEY_FIX
            )
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)
        key_id = hashlib.sha256(b"speakerdb key id\0" + key).hexdigest()[:16]
        return cls(key_id, AESGCM(key))

    def seal(self, clip: Clip) -> bytes:
        """The clip's samples, encrypted and bound to its audio hash."""
        nonce = secrets.token_bytes(12)
        samples = np.ascontiguousarray(clip.samples, "<f4").tobytes()
        return _MAGIC + nonce + self._aead.encrypt(nonce, samples, clip.sha256.encode())

    def open(self, kept: KeptAudio, utterance: Utterance) -> Clip:
        """The clip ``kept`` holds, checked against its utterance's audio hash."""
        from cryptography.exceptions import InvalidTag

        where = f"the kept audio of clip #{utterance.id} ({utterance.speaker!r})"
        if kept.key_id != self.key_id:
            raise InputError(
                f"{where} was sealed with another key (id {kept.key_id}, not "
                f"{self.key_id}); give the key it was kept with"
            )
        data = kept.data
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 12 + 16:
            raise DatabaseError(f"{where} is damaged; enroll the speaker again")
        nonce, body = data[len(_MAGIC) : len(_MAGIC) + 12], data[len(_MAGIC) + 12 :]
        try:
            raw = self._aead.decrypt(nonce, body, utterance.audio_sha256.encode())
        except InvalidTag:
            raise DatabaseError(f"{where} was altered; enroll the speaker again") from None
        samples = np.frombuffer(raw, "<f4").astype(np.float32)
        if hashlib.sha256(samples.data).hexdigest() != utterance.audio_sha256:
            raise DatabaseError(f"{where} does not match its clip; enroll the speaker again")
        return Clip(samples, utterance.source, utterance.audio_sha256)

    def check_database(self, snapshot: Snapshot) -> bool:
        """Refuse a database that keeps audio under another key; whether it has recorded
        none yet."""
        recorded = snapshot.settings().get(_SETTING)
        if recorded is not None and recorded != self.key_id:
            raise InputError(
                f"this database keeps its audio under another key (id {recorded}); give "
                f"that key ({ENV_AUDIO_KEY} or --audio-key-file), not the one with id {self.key_id}"
            )
        return recorded is None

    def record(self, change: Change) -> None:
        """:meth:`check_database` in ``change``, recording this key at its first use."""
        if self.check_database(change):
            change.set_setting(_SETTING, self.key_id)


class KeyChoice:
    """The audio key of one database: the argument, else ``SPEAKERDB_AUDIO_KEY``, resolved
    (and derived) when first needed."""

    def __init__(self, given: bytes | str | None) -> None:
        self._given = given
        self._key: AudioKey | None = None

    @classmethod
    def of(cls, key: AudioKey) -> KeyChoice:
        """The choice of ``key`` itself."""
        choice = cls(None)
        choice._key = key
        return choice

    def key(self) -> AudioKey:
        """The key; :class:`InputError` naming the fix when none is given."""
        if self._key is None:
            secret = self._given if self._given is not None else os.environ.get(ENV_AUDIO_KEY)
            if not secret:
                raise InputError("keeping or reading enrollment audio needs a key: " + NO_KEY_FIX)
            self._key = AudioKey.from_secret(secret)
        return self._key
