"""C2SP signed notes with Ed25519, and the tlog-checkpoint body they carry.

Bytes signed: the note text exactly (UTF-8, ending in a newline). A note is the text, a blank
line, then one line per signature: ``— <key name> <base64(key id || signature)>`` (U+2014 EM
DASH, space). Key id = the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key),
where 0x01 names the Ed25519 algorithm. A verifier key is written
``<name>+<hex key id>+<base64(0x01 || public key)>`` (a "vkey").

Checkpoint text (C2SP tlog-checkpoint): ``<origin>\\n<decimal size>\\n<base64 root hash>\\n``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
DASH = "\u2014"
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class NoteError(ValueError):
    """A note, vkey or checkpoint could not be trusted."""


class MalformedNote(NoteError):
    """The bytes are not a well-formed note, vkey or checkpoint."""


class UnverifiedNote(NoteError):
    """No known key verified the note, or a known key's signature is wrong."""


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise MalformedNote("a key name must be non-empty with no spaces or '+'")


@dataclass(frozen=True)
class Verifier:
    name: str
    public_key: bytes

    @functools.cached_property
    def key_id(self) -> bytes:
        """Derived from the name and key alone: computed once (every receipt names it)."""
        return key_id(self.name, self.public_key)

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id_hex}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise MalformedNote("a vkey is name+keyid+key")
        name, hex_id, encoded = parts
        _check_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise MalformedNote("the vkey's key or key id is not encoded correctly") from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519 or len(hex_id) != 8:
            raise MalformedNote("the vkey is not an Ed25519 key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted:
            raise MalformedNote("the vkey's key id does not match its key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SeedKey:
    """A name and the Ed25519 key its 32-byte seed gives: what a log's signer and a witness's
    signer share (each checks the name by its own spec's rule)."""

    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Self:
        cls.check_name(name)
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @staticmethod
    def check_name(name: str) -> None:
        _check_name(name)

    @functools.cached_property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Signer(SeedKey):
    @functools.cached_property
    def verifier(self) -> Verifier:
        """Derived from the private key alone: made once, not on every signature."""
        return Verifier(self.name, self.public_key)

    @property
    def key_id_hex(self) -> str:
        return self.verifier.key_id_hex

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def _check_text(text: str) -> None:
    if not text.endswith("\n") or text == "\n":
        raise MalformedNote("note text must be non-empty and end with a newline")
    if "\n\n" in text or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote("note text must not contain blank lines or control characters")


def sign_note(text: str, signers: list[Signer]) -> str:
    """Sign ``text`` with each signer; return the whole note."""
    _check_text(text)
    message = text.encode()
    lines = []
    for signer in signers:
        blob = signer.verifier.key_id + signer.sign(message)
        lines.append(f"{DASH} {signer.name} {base64.b64encode(blob).decode()}\n")
    return text + "\n" + "".join(lines)


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[str]]:
    """Return the note's text and the names of the known keys that signed it.

    Signatures by unknown keys are ignored; a known key whose signature fails is an error, and
    so is a note that no known key signed.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise MalformedNote("a note is text, a blank line and signature lines")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    known = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode()
    verified: list[str] = []
    lines = block.split("\n")[:-1]
    if not lines:
        raise MalformedNote("the note has no signature")
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise MalformedNote("a signature line is '— name signature'")
        _, name, encoded = parts
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise MalformedNote("a signature is not base64") from exc
        if len(blob) < 5:
            raise MalformedNote("a signature is too short")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            continue
        if len(blob) != 68 or not verifier.verify(message, blob[4:]):
            raise UnverifiedNote(f"the signature by {name} does not verify")
        verified.append(name)
    if not verified:
        raise UnverifiedNote("no known key signed the note")
    return text, verified


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin or size < 0 or len(root) != 32:
        raise MalformedNote("a checkpoint needs an origin, a size >= 0 and a 32-byte root")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly (extension lines are allowed and ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise MalformedNote("a checkpoint is origin, size and root hash lines")
    if not _SIZE.match(lines[1]):
        raise MalformedNote("the checkpoint size is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise MalformedNote("the checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise MalformedNote("the checkpoint root hash is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)
