"""C2SP tlog-witness v1 ``add-checkpoint``: request and response bytes, and the witness's
decision, as pure functions (no HTTP, no storage).

Request body (``POST <prefix>/add-checkpoint``), every line ending in 0x0A, no CR:

    old <size>\\n            ASCII decimal, no leading zero (0 is "0")
    <base64 hash>\\n         0..63 lines, one 32-byte consistency-proof hash each (RFC 4648 §4)
    \\n                      the empty line
    <checkpoint note>       text, blank line, signature lines (C2SP signed-note)

Responses: 200, body one or more cosignature lines ``— <name> <base64>\\n``; 409, body the
witness's stored size in decimal and 0x0A, ``Content-Type: text/x.tlog.size``; 400, 403, 404,
422 with a short text body.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.integrity import merkle
from shared.integrity.cosignature import (
    DASH,
    WitnessKey,
    WitnessSigner,
    check_cosignatures,
    parse_signature_line,
)
from shared.integrity.note import (
    Checkpoint,
    NoteError,
    UnverifiedNote,
    Verifier,
    open_note,
    parse_checkpoint,
)

MAX_PROOF_LINES = 63
HASH_SIZE = 32
MAX_SIZE = 2**63 - 1
MAX_BODY_BYTES = 256 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
COSIGNATURE_CONTENT_TYPE = "text/plain; charset=utf-8"
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class WitnessProtocolError(ValueError):
    """Bytes that are not a well-formed add-checkpoint request or response (HTTP 400)."""


def _size(text: str, what: str) -> int:
    if not _DECIMAL.match(text) or int(text) > MAX_SIZE:
        raise WitnessProtocolError(f"{what} is not a decimal size with no leading zero")
    return int(text)


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request; ``checkpoint`` is parsed but NOT yet verified."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint

    @property
    def origin(self) -> str:
        """The (unverified) origin line: the key to the witness's stored state."""
        return self.checkpoint.origin


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """``old <size>\\n`` || one base64 line per proof hash || ``\\n`` || the note (UTF-8)."""
    if not 0 <= old_size <= MAX_SIZE:
        raise WitnessProtocolError("the old size is 0 .. 2**63 - 1")
    if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
        raise WitnessProtocolError("a consistency proof is at most 63 hashes of 32 bytes")
    lines = [f"old {old_size}\n"] + [base64.b64encode(h).decode() + "\n" for h in proof]
    return ("".join(lines) + "\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Strictly parse a request body: UTF-8, only 0x0A line ends (a CR anywhere is refused),
    canonical ``old`` line, at most 63 canonical base64 32-byte proof lines, the empty line,
    then a note whose text is a checkpoint and which has at least one signature line."""
    if len(body) > MAX_BODY_BYTES:
        raise WitnessProtocolError(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError("the request body is not UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise WitnessProtocolError("the request body has control characters (CR?) besides LF")
    first, sep, rest = text.partition("\n")
    if not sep or not first.startswith("old "):
        raise WitnessProtocolError("the first line is 'old <size>'")
    old_size = _size(first[4:], "the old size")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise WitnessProtocolError("the empty line between the proof and the note is missing")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise WitnessProtocolError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise WitnessProtocolError(
                "a proof line is not base64 (or the empty line before the note is missing)"
            ) from exc
        if len(digest) != HASH_SIZE or base64.b64encode(digest).decode() != line:
            raise WitnessProtocolError(
                "a proof line is not one base64 32-byte hash (or the empty line is missing)"
            )
        proof.append(digest)
    split = rest.rfind("\n\n")
    if split < 0 or not rest.endswith("\n") or rest.endswith("\n\n"):
        raise WitnessProtocolError("the note is text, a blank line and signature lines")
    try:
        checkpoint = parse_checkpoint(rest[: split + 1])
        for line in rest[split + 2 : -1].split("\n"):
            parse_signature_line(line)
    except NoteError as exc:
        raise WitnessProtocolError(f"the checkpoint note is malformed: {exc}") from exc
    return AddCheckpoint(old_size, tuple(proof), rest, checkpoint)


@dataclass(frozen=True)
class StoredCheckpoint:
    """What a witness keeps per origin: the size and root it last cosigned."""

    size: int
    root: bytes


@dataclass(frozen=True)
class Decision:
    """The witness's answer. ``status`` 200 comes with ``persist`` (to store, atomically with
    the read of the old state, before answering); 409 with ``stored_size``. ``split_view``
    marks a log-signed checkpoint that contradicts the stored one (to be logged as evidence).
    """

    status: int
    reason: str
    persist: StoredCheckpoint | None = None
    stored_size: int | None = None
    split_view: bool = False


def decide(
    request: AddCheckpoint,
    trusted: Mapping[str, Sequence[Verifier]],
    stored: StoredCheckpoint | None,
) -> Decision:
    """Apply C2SP tlog-witness's checks in its order.

    ``trusted``: origin -> the log keys the witness trusts for it; ``stored``: the state held
    for ``request.origin`` (None: never cosigned, size 0). The caller reads ``stored`` and
    writes ``persist`` in one transaction (compare-and-set on the stored size), or requests
    racing at sizes N and N+K could roll the witness back.
    """
    cp = request.checkpoint
    keys = trusted.get(cp.origin)
    if not keys:
        return Decision(404, f"unknown log origin {cp.origin!r}")
    try:
        open_note(request.note, list(keys))
    except UnverifiedNote as exc:
        return Decision(403, f"the log's signature: {exc}")
    except NoteError as exc:
        return Decision(403, f"the checkpoint note cannot be verified: {exc}")
    if request.old_size > cp.size:
        return Decision(400, f"old size {request.old_size} is above the checkpoint's {cp.size}")
    held = stored.size if stored is not None else 0
    if request.old_size != held:
        return Decision(409, f"the witness holds size {held}", stored_size=held)
    if cp.size == 0 and cp.root != merkle.EMPTY_ROOT:
        return Decision(422, "a checkpoint of size 0 must have the empty tree's root")
    if request.old_size == 0:
        if request.proof:
            return Decision(422, "from size 0 the consistency proof must be empty")
    else:
        assert stored is not None  # held == old_size > 0
        if request.old_size == cp.size:
            if cp.root != stored.root:
                return Decision(
                    422,
                    f"split view: a second log-signed checkpoint of size {cp.size} "
                    "with another root than the one cosigned",
                    split_view=True,
                )
            if request.proof:
                return Decision(422, "a proof between equal sizes must be empty")
        elif not merkle.verify_consistency(
            stored.size, cp.size, stored.root, cp.root, request.proof
        ):
            return Decision(
                422,
                f"split view or bad proof: the log-signed checkpoint of size {cp.size} is "
                f"not proven consistent with the cosigned checkpoint of size {stored.size}",
                split_view=True,
            )
    return Decision(200, "cosign", persist=StoredCheckpoint(cp.size, cp.root))


def cosign_response(
    request: AddCheckpoint, signers: Sequence[WitnessSigner], timestamp: int
) -> bytes:
    """The 200 body: one cosignature/v1 line per witness key, each ``— <name> <base64>\\n``."""
    text = request.note[: request.note.rfind("\n\n") + 1]
    return "".join(s.cosign(text, timestamp).line for s in signers).encode()


def format_size_body(size: int) -> bytes:
    """The 409 body (``text/x.tlog.size``): the stored size in decimal, then 0x0A."""
    return b"%d\n" % size


def parse_size_body(body: bytes) -> int:
    if not body.endswith(b"\n"):
        raise WitnessProtocolError("a text/x.tlog.size body ends in a newline")
    try:
        return _size(body[:-1].decode("ascii"), "the 409 body")
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError("the 409 body is not ASCII") from exc


def parse_cosignature_lines(body: bytes) -> list[str]:
    """The 200 body's signature lines (each kept with its 0x0A); at least one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError("the cosignature response is not UTF-8") from exc
    if not text.endswith("\n") or "\r" in text:
        raise WitnessProtocolError("each cosignature line ends in a single LF")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    for line in lines:
        if not line.startswith(DASH + " "):
            raise WitnessProtocolError("each line of a 200 response is a note signature line")
        try:
            parse_signature_line(line)
        except NoteError as exc:
            raise WitnessProtocolError(str(exc)) from exc
    return lines


@dataclass(frozen=True)
class WitnessReply:
    """What the log's witness client makes of a response: ``cosignatures`` (verified lines by
    this witness) on 200, ``witness_size`` on 409, otherwise ``error``."""

    status: int
    cosignatures: tuple[str, ...] = ()
    witness_size: int | None = None
    error: str | None = None


def _by(line: str, witness: WitnessKey) -> bool:
    name, blob = parse_signature_line(line)
    return name == witness.name and blob[:4] == witness.key_id


def read_reply(
    status: int, content_type: str, body: bytes, note: str, witness: WitnessKey
) -> WitnessReply:
    """Interpret a witness's answer to ``note``: keep only lines by ``witness`` that verify
    over the note's text (other keys' lines are ignored, as C2SP says); a 409 gives the size
    to prove consistency from on the retry."""
    if status == 200:
        try:
            lines = parse_cosignature_lines(body)
        except WitnessProtocolError as exc:
            return WitnessReply(status, error=str(exc))
        text = note[: note.rfind("\n\n") + 1]
        mine = [line for line in lines if _by(line, witness)]
        report = check_cosignatures(text + "\n" + "".join(mine), [witness]) if mine else None
        if report is None or witness.name not in report.valid:
            why = report.failures.get(witness.name) if report else "no line by this witness"
            return WitnessReply(status, error=f"{witness.name}: {why}")
        return WitnessReply(status, cosignatures=tuple(mine))
    if status == 409:
        if content_type.split(";")[0].strip().lower() != SIZE_CONTENT_TYPE:
            return WitnessReply(status, error=f"409 without {SIZE_CONTENT_TYPE}")
        try:
            return WitnessReply(status, witness_size=parse_size_body(body))
        except WitnessProtocolError as exc:
            return WitnessReply(status, error=str(exc))
    return WitnessReply(status, error=body[:200].decode("utf-8", "replace").strip())
