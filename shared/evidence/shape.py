"""An evidence bundle's shape, checked strictly before anything in it is believed.

The file must be UTF-8 I-JSON (canonical.loads: no duplicate keys, no NaN, integers exact,
nesting bounded) and every object must hold exactly its fields, each of its type: an index is
a JSON integer (never 1.0, "1", null or [1]), a hash 32 bytes of base64, and so on. Anything
else is a ``MalformedBundle`` naming where (``entries[3].index``) and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from shared.integrity import canonical
from shared.rules.kinds import AUDIT_RUN, KINDS, parse_uuid

FORMAT = "plant-evidence-bundle/3"
FORMAT_2 = "plant-evidence-bundle/2"  # no receipts, audit reports, map commits or current proofs
OLD_FORMATS = ("plant-evidence-bundle/1",)
ENTITY_TYPES = frozenset(kind.type for kind in KINDS.values())
MAP_TYPE = "map"  # the entity_type of a map_commit entry (issue 24)
ENTRY_KINDS = ENTITY_TYPES | {AUDIT_RUN, MAP_TYPE}
# audit: a run's report (issue 22); map_commit: a seal's map root (issue 24)
ENTRY_TYPES: tuple[str, ...] = ("version", "certificate", "audit", "map_commit")
TOP: tuple[str, ...] = ("format", "tenant", "origin", "created_at", "checkpoint", "public_keys")
TOP += ("previous_checkpoint", "filters", "entries", "statement")
TOP_3 = (*TOP, "current_proofs")
ENTRY: tuple[str, ...] = (
    "index",
    "entry_type",
    "entity_type",
    "entity_id",
    "version",
    "body",
    "leaf_hash",
)
ENTRY += ("inclusion_proof",)
ENTRY_3 = (*ENTRY, "receipt")  # format 3: each entry's write receipt


class MalformedBundle(ValueError):
    """The bundle is not well-formed: ``where`` names the part, ``problem`` what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class UnsupportedFormat(MalformedBundle):
    """The bundle is of a format this verifier does not check (an old one, or not a bundle)."""


def shown(value: Any, limit: int = 60) -> str:
    """A value from the bundle, printable whatever it holds (quoted, escaped, cut short)."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _what(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number with a fraction"}
    names |= {str: "a string", list: "an array", dict: "an object"}
    return f"{names.get(type(value), type(value).__name__)} ({shown(value, 24)})"


@dataclass(frozen=True)
class CheckpointCopy:
    note: str
    size: int
    root: bytes
    root_b64: str


@dataclass(frozen=True)
class Previous(CheckpointCopy):
    consistency_proof: list[bytes]


@dataclass(frozen=True)
class Header:
    """Everything but the entries, as the bundle states it (nothing here is trusted yet)."""

    document: dict[str, Any]  # the bundle as parsed: its header, for the statement to check
    tenant: str
    origin: str
    kind: str | None
    entity: str | None
    checkpoint: CheckpointCopy
    previous: Previous | None
    statement: dict[str, Any]

    @property
    def unfiltered(self) -> bool:
        return self.kind is None and self.entity is None


@dataclass(frozen=True)
class Entry:
    index: int
    entry_type: str
    entity_type: str
    entity_id: str
    version: int
    body: bytes
    leaf_hash: bytes
    inclusion_proof: list[bytes]
    receipt: Any  # the write receipt's JSON, checked by ``contents`` (None: the log had none)

    @property
    def name(self) -> str:
        return f"entry {self.index} ({self.entity_type} {self.entity_id} v{self.version})"


def load(raw: bytes) -> Any:
    """Parse the bundle file strictly; never raises anything but MalformedBundle."""
    try:
        return canonical.loads(raw)
    except ValueError as exc:  # CanonicalError, and int()'s own refusal of huge literals
        raise MalformedBundle("bundle file", f"not a well-formed JSON document: {exc}") from None


def fields(value: Any, where: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as an object holding exactly ``names``."""
    if type(value) is not dict:
        raise MalformedBundle(where, f"must be an object, not {_what(value)}")
    missing = [n for n in names if n not in value]
    if missing:
        raise MalformedBundle(where, f"the field {missing[0]!r} is missing")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise MalformedBundle(where, f"unknown field {shown(unknown[0])}")
    return value


def integer(value: Any, where: str, minimum: int = 0) -> int:
    if type(value) is not int:
        raise MalformedBundle(where, f"must be an integer, not {_what(value)}")
    if value < minimum:
        raise MalformedBundle(where, f"must be at least {minimum}, not {value}")
    return value


def string(value: Any, where: str, choices: tuple[str, ...] | frozenset[str] = ()) -> str:
    if type(value) is not str:
        raise MalformedBundle(where, f"must be a string, not {_what(value)}")
    if choices and value not in choices:
        raise MalformedBundle(where, f"must be one of {sorted(choices)}, not {shown(value)}")
    return value


def _optional(value: Any, where: str, check: Any) -> Any:
    return None if value is None else check(value, where)


def _entity_id(value: Any, where: str) -> str:
    if parse_uuid(value) != value:
        raise MalformedBundle(where, f"must be a UUID in lower case, not {_what(value)}")
    return str(value)


def base64_bytes(value: Any, where: str, size: int | None = None) -> bytes:
    string(value, where)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedBundle(where, "is not base64") from None
    if size is not None and len(raw) != size:
        raise MalformedBundle(where, f"must be {size} bytes, not {len(raw)}")
    return raw


def hashes(value: Any, where: str) -> list[bytes]:
    if type(value) is not list:
        raise MalformedBundle(where, f"must be an array of hashes, not {_what(value)}")
    return [base64_bytes(h, f"{where}[{i}]", 32) for i, h in enumerate(value)]


def _checkpoint_parts(data: dict[str, Any], where: str) -> tuple[str, int, bytes, str]:
    return (
        string(data["note"], f"{where}.note"),
        integer(data["size"], f"{where}.size"),
        base64_bytes(data["root"], f"{where}.root", 32),
        data["root"],
    )


def _checkpoint(value: Any) -> CheckpointCopy:
    data = fields(value, "checkpoint", ("note", "size", "root"))
    return CheckpointCopy(*_checkpoint_parts(data, "checkpoint"))


def _previous(value: Any) -> Previous:
    where = "previous_checkpoint"
    data = fields(value, where, ("note", "size", "root", "consistency_proof"))
    proof = hashes(data["consistency_proof"], f"{where}.consistency_proof")
    return Previous(*_checkpoint_parts(data, where), proof)


def _envelope(value: Any) -> dict[str, Any]:
    envelope = fields(value, "statement", ("payload", "payloadType", "signatures"))
    string(envelope["payload"], "statement.payload")
    string(envelope["payloadType"], "statement.payloadType")
    signatures = envelope["signatures"]
    if type(signatures) is not list:
        raise MalformedBundle("statement.signatures", f"must be an array, not {_what(signatures)}")
    for i, signature in enumerate(signatures):
        where = f"statement.signatures[{i}]"
        fields(signature, where, ("keyid", "sig"))
        string(signature["keyid"], f"{where}.keyid")
        string(signature["sig"], f"{where}.sig")
    return envelope


def header(data: Any) -> Header:
    """The bundle's header, its shape checked; the format first, so an old bundle is named."""
    if type(data) is not dict:
        raise MalformedBundle("bundle", f"must be a JSON object, not {_what(data)}")
    fmt = data.get("format")
    if fmt in OLD_FORMATS:
        raise UnsupportedFormat(
            "format",
            f"{fmt} is no longer supported: its header and the list of entries it covers are "
            "not signed, so it cannot prove what it holds; export the bundle again",
        )
    if fmt not in (FORMAT, FORMAT_2):
        raise UnsupportedFormat("format", f"not a {FORMAT} bundle (format {shown(fmt)})")
    fields(data, "bundle", TOP_3 if fmt == FORMAT else TOP)
    proofs = data.get("current_proofs")
    if proofs is not None and type(proofs) is not list:
        raise MalformedBundle("current_proofs", f"must be an array or null, not {_what(proofs)}")
    for name in ("tenant", "origin", "created_at"):
        string(data[name], name)
    keys = data["public_keys"]
    if type(keys) is not list:
        raise MalformedBundle("public_keys", f"must be an array, not {_what(keys)}")
    for i, key in enumerate(keys):
        string(key, f"public_keys[{i}]")
    filters = fields(data["filters"], "filters", ("kind", "entity"))
    if type(data["entries"]) is not list:
        raise MalformedBundle("entries", f"must be an array, not {_what(data['entries'])}")
    previous = data["previous_checkpoint"]
    return Header(
        document=data,
        tenant=data["tenant"],
        origin=data["origin"],
        kind=_optional(filters["kind"], "filters.kind", lambda v, w: string(v, w, ENTITY_TYPES)),
        entity=_optional(filters["entity"], "filters.entity", _entity_id),
        checkpoint=_checkpoint(data["checkpoint"]),
        previous=None if previous is None else _previous(previous),
        statement=_envelope(data["statement"]),
    )


def entry(value: Any, position: int, fmt: str = FORMAT) -> Entry:
    """The entry at ``position`` of the list of a bundle of format ``fmt``, its shape checked
    (its content is not)."""
    where = f"entries[{position}]"
    data = fields(value, where, ENTRY_3 if fmt == FORMAT else ENTRY)
    return Entry(
        index=integer(data["index"], f"{where}.index"),
        entry_type=string(data["entry_type"], f"{where}.entry_type", ENTRY_TYPES),
        entity_type=string(data["entity_type"], f"{where}.entity_type", ENTRY_KINDS),
        entity_id=_entity_id(data["entity_id"], f"{where}.entity_id"),
        version=integer(data["version"], f"{where}.version", minimum=1),
        body=base64_bytes(data["body"], f"{where}.body"),
        leaf_hash=base64_bytes(data["leaf_hash"], f"{where}.leaf_hash", 32),
        inclusion_proof=hashes(data["inclusion_proof"], f"{where}.inclusion_proof"),
        receipt=data.get("receipt"),
    )
