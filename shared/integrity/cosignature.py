"""C2SP tlog-cosignature v1 (Ed25519): a witness's timestamped signature on a checkpoint.

A cosignature is a signed-note signature line on the checkpoint:
``— <witness name> <base64(key id || timestamp || signature)>`` (U+2014 EM DASH, space).

- key id (4 bytes) = SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4], where
  0x04 is the signed-note signature type "timestamped Ed25519 checkpoint cosignature";
- timestamp (8 bytes) = POSIX seconds, big-endian unsigned, 1 <= t <= 2**63 - 1;
- signature (64 bytes) = Ed25519 over the message
  ``cosignature/v1\\n`` || ``time <t>\\n`` (t in ASCII decimal, no leading zeroes) || the
  checkpoint's whole note text (every line, extension lines too, final newline included,
  no signature line).

So a line decodes to exactly 4 + 8 + 64 = 76 bytes. A witness vkey is
``<name>+<hex key id>+<base64(0x04 || public key)>``. The message does not commit to the
witness's name: one key per cosigner (C2SP). Verifiers ignore lines whose (name, key id) they
do not know, as for every signed note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.integrity.note import DASH, MalformedNote, NoteError, SeedKey

ALG_COSIGNATURE_V1 = 0x04
HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
LINE_BYTES = 4 + 8 + 64
_NAME = re.compile(r"^[^\s+]+$")


class CosignatureError(NoteError):
    """A cosignature, or a witness vkey, could not be trusted."""


class MalformedCosignature(CosignatureError, MalformedNote):
    """The bytes are not a cosignature line or a witness vkey."""


class BadCosignature(CosignatureError):
    """A known witness's cosignature does not verify over this checkpoint."""


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise MalformedCosignature("a witness name must be non-empty with no spaces or '+'")


def _check_timestamp(timestamp: int) -> None:
    if not 1 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedCosignature("a cosignature timestamp is 1 .. 2**63 - 1 seconds")


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()[:4]


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a witness signs: ``cosignature/v1\\ntime <t>\\n`` || checkpoint note text.

    ``checkpoint_text`` is the note text only (origin, size, root, any extension lines, each
    ending in 0x0A), never the blank line or the signature lines.
    """
    _check_timestamp(timestamp)
    if not checkpoint_text.endswith("\n") or "\n\n" in checkpoint_text:
        raise MalformedCosignature("a checkpoint text ends in one newline and has no blank line")
    return HEADER + b"time %d\n" % timestamp + checkpoint_text.encode()


@dataclass(frozen=True)
class Cosignature:
    """One cosignature line's parts; ``line`` gives ``— <name> <base64(76 bytes)>\\n``."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def blob(self) -> bytes:
        """key id (4) || timestamp (8, big-endian) || Ed25519 signature (64)."""
        return self.key_id + self.timestamp.to_bytes(8, "big") + self.signature

    @property
    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.blob).decode()}\n"


def parse_signature_line(line: str) -> tuple[str, bytes]:
    """Split a signed-note signature line (with or without its 0x0A) into (name, bytes)."""
    text = line[:-1] if line.endswith("\n") else line
    parts = text.split(" ")
    if len(parts) != 3 or parts[0] != DASH:
        raise MalformedCosignature("a signature line is '— name base64'")
    _check_name(parts[1])
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except binascii.Error as exc:
        raise MalformedCosignature("a signature line's signature is not base64") from exc
    if len(blob) < 5:
        raise MalformedCosignature("a signature line's signature is shorter than 5 bytes")
    return parts[1], blob


def parse_cosignature(line: str) -> Cosignature:
    """Parse a cosignature v1 line: exactly 76 bytes after base64 (unverified)."""
    name, blob = parse_signature_line(line)
    if len(blob) != LINE_BYTES:
        raise MalformedCosignature("a cosignature/v1 signature is 76 bytes")
    timestamp = int.from_bytes(blob[4:12], "big")
    _check_timestamp(timestamp)
    return Cosignature(name, blob[:4], timestamp, blob[12:])


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key, as a verifier of cosignature/v1 lines."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<hex key id>+<base64(0x04 || public key)>``."""
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> WitnessKey:
        """Parse a witness vkey; its type byte must be 0x04 and its key id must match."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise MalformedCosignature("a witness vkey is name+keyid+key")
        name, hex_id, encoded = parts
        _check_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise MalformedCosignature("a witness vkey's key id is 8 lowercase hex digits")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise MalformedCosignature("a witness vkey's key is not base64") from exc
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise MalformedCosignature(
                "a witness vkey is type 0x04 (cosignature/v1) and a 32-byte Ed25519 key"
            )
        key = cls(name, raw[1:])
        if key.key_id.hex() != hex_id:
            raise MalformedCosignature("the witness vkey's key id does not match its key")
        return key

    def matches(self, cosignature: Cosignature) -> bool:
        """Same (name, key id): the line is this witness's and must verify."""
        return cosignature.name == self.name and cosignature.key_id == self.key_id

    def verify(self, checkpoint_text: str, cosignature: Cosignature) -> bool:
        """Ed25519 over ``signed_message(checkpoint_text, cosignature.timestamp)``."""
        if not self.matches(cosignature):
            return False
        message = signed_message(checkpoint_text, cosignature.timestamp)
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                cosignature.signature, message
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class WitnessSigner(SeedKey):
    """A witness's private key: produces cosignature/v1 lines."""

    @staticmethod
    def check_name(name: str) -> None:
        _check_name(name)

    @property
    def key(self) -> WitnessKey:
        return WitnessKey(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return self.key.vkey

    def cosign(self, checkpoint_text: str, timestamp: int) -> Cosignature:
        """Sign ``cosignature/v1\\ntime <timestamp>\\n`` || checkpoint text."""
        signature = self.private_key.sign(signed_message(checkpoint_text, timestamp))
        return Cosignature(self.name, self.key.key_id, timestamp, signature)


def split_note(note: str) -> tuple[str, list[str]]:
    """(note text, signature lines each with its 0x0A): split at the last blank line."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise MalformedCosignature("a note is text, a blank line and signature lines")
    lines = [line + "\n" for line in note[split + 2 :].split("\n")[:-1]]
    if not lines:
        raise MalformedCosignature("the note has no signature line")
    return note[: split + 1], lines


def add_cosignatures(note: str, lines: Sequence[str]) -> str:
    """The note with each new well-formed signature line appended once (order kept).

    Lines already on the note are not repeated; the note text and its other signatures are
    untouched, so the log's own signature still verifies.
    """
    text, existing = split_note(note)
    out = list(existing)
    for line in lines:
        full = line if line.endswith("\n") else line + "\n"
        parse_signature_line(full)
        if full not in out:
            out.append(full)
    return text + "\n" + "".join(out)


@dataclass
class CosignatureReport:
    """What the known witnesses said about one checkpoint text.

    ``valid``: witness name -> timestamp; ``failures``: witness name -> why (an auditor's words).
    """

    valid: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def check_cosignatures(
    note: str,
    witnesses: Sequence[WitnessKey],
    *,
    now: int | None = None,
    max_future_seconds: int = 300,
) -> CosignatureReport:
    """Verify every line on ``note`` that a known witness (name and key id) made.

    Lines of unknown keys (the log's own signature, other witnesses) are ignored. A known
    witness's line that does not verify, or is timestamped more than ``max_future_seconds``
    after ``now`` (when given), is a failure; a witness with no line at all is "no cosignature".
    """
    text, lines = split_note(note)
    report = CosignatureReport()
    for line in lines:
        name, blob = parse_signature_line(line)
        for witness in witnesses:
            if name != witness.name or blob[:4] != witness.key_id:
                continue
            try:
                cosig = parse_cosignature(line)
            except MalformedCosignature as exc:
                why: str | None = str(exc)
            else:
                why = None
                if not witness.verify(text, cosig):
                    why = "its cosignature does not verify over this checkpoint"
                elif now is not None and cosig.timestamp > now + max_future_seconds:
                    why = f"its cosignature is dated in the future ({cosig.timestamp})"
            if why is not None:
                report.failures[name] = why  # one bad line fails the witness
                report.valid.pop(name, None)
            elif name not in report.failures:
                report.valid[name] = cosig.timestamp
    for witness in witnesses:
        if witness.name not in report.valid and witness.name not in report.failures:
            report.failures[witness.name] = "no cosignature by this witness on the checkpoint"
    return report


def require_quorum(
    note: str, witnesses: Sequence[WitnessKey], quorum: int, *, now: int | None = None
) -> dict[str, int]:
    """The valid cosignatures (name -> timestamp) if at least ``quorum`` distinct witnesses
    cosigned; otherwise BadCosignature naming each missing or failed witness and why."""
    names = [w.name for w in witnesses]
    if len(set(names)) != len(names):
        raise MalformedCosignature("two witness keys share a name")
    if not 0 < quorum <= len(witnesses):
        raise MalformedCosignature("the quorum must be between 1 and the number of witnesses")
    report = check_cosignatures(note, witnesses, now=now)
    if len(report.valid) < quorum:
        why = "; ".join(f"{name}: {reason}" for name, reason in sorted(report.failures.items()))
        raise BadCosignature(
            f"{len(report.valid)} of the {quorum} cosignatures required verify ({why})"
        )
    return report.valid
