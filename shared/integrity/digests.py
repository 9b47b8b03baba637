"""SHA-256 digests of canonical bytes: whole versions, sections and fields.

A version's digest is SHA-256 of its RFC 8785 bytes. Beside each version the ledger keeps a
digest of every section (SHA-256 of the section's RFC 8785 bytes) and of every field (of the
field's value's RFC 8785 bytes), so that an audit can name the section and field that
changed, not just the row. Those are locators, not the integrity proof (the leaf hash and the
signed tree are), so each is the first ``LOCATOR_SIZE`` bytes of its SHA-256, packed:

    0x01 || layout id (8 bytes) || for each section in name order:
        section digest || the digest of each of its fields, in name order

"Name order" is RFC 8785's (UTF-16 code units). The layout is the list of section and field
names, ``[[section, [field, ...]], ...]`` in that order; its id is the first 8 bytes of
SHA-256 of the layout's RFC 8785 bytes. The registry writes a handful of layouts (one per
kind, one for certificate envelopes); ``shared.registry.documents`` registers them at import, so any
process can read any row back into names.

Rows written before this format hold the same digests, full length, as JSON
(``{section: {"digest": hex, "fields": {field: hex}}}``); ``stored_field_digests`` reads both.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from shared.integrity import canonical

PREFIX = "sha256:"
LOCATOR_SIZE = 16
FORMAT = 1
LAYOUT_ID_SIZE = 8
MEMO_LIMIT = 4096  # remembered section and field digests (repeated values: tenant, status...)
MEMO_BYTES = 2048  # values longer than this are not remembered
MAX_LAYOUTS = 1024

_FORMAT = bytes([FORMAT])
Layout = tuple[tuple[str, tuple[str, ...]], ...]
Dumps = Callable[[Any], bytes]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def label(digest: bytes) -> str:
    """The printed form of a digest: ``sha256:<hex>``."""
    return PREFIX + digest.hex()


def b64(data: bytes) -> str:
    """Bytes as JSON carries them (hashes, proofs, bodies): standard base64 with padding."""
    return base64.b64encode(data).decode()


_layouts: dict[bytes, Layout] = {}
_layout_ids: dict[Layout, bytes] = {}


def layout_id(layout: Layout) -> bytes:
    """The id of a layout, remembered so that packed digests can be read back into names."""
    known = _layout_ids.get(layout)
    if known is not None:
        return known
    ident = sha256(canonical.dumps([[s, list(f)] for s, f in layout]))[:LAYOUT_ID_SIZE]
    if len(_layouts) < MAX_LAYOUTS:
        _layouts[ident] = layout
        _layout_ids[layout] = ident
    return ident


def known_layout(ident: bytes) -> Layout | None:
    return _layouts.get(ident)


# Digests of values seen recently: most sections and fields of a batch repeat (the tenant,
# the actor, the status, the rule results), so each is hashed once. Bounded: each starts
# again when full. Keys: a section's canonical bytes -> (its packed digests, its field
# names); a field's value (a string, or the canonical bytes of another value) -> its digest.
_sections: dict[bytes, tuple[bytes, tuple[str, ...]]] = {}
_fields: dict[str | bytes, bytes] = {}


def _remember(memo: dict[Any, Any], key: Any, found: Any) -> None:
    if len(key) <= MEMO_BYTES:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[key] = found


def _locator(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()[:LOCATOR_SIZE]


_NULL = _locator(b"null")


_orders: dict[tuple[str, ...], tuple[str, ...]] = {}


def _in_order(obj: dict[str, Any]) -> tuple[str, ...]:
    """An object's member names in RFC 8785 order (remembered: documents share their shapes)."""
    names = tuple(obj)
    found = _orders.get(names)
    if found is None:
        found = tuple(sorted(names, key=canonical.member_order))
        if len(_orders) < MAX_LAYOUTS:
            _orders[names] = found
    return found


def _section(raw: bytes, value: Any, dumps: Dumps) -> tuple[bytes, tuple[str, ...]]:
    """A section not seen recently: its packed digests (its own, then its fields') and its
    field names."""
    if type(value) is not dict:
        found: tuple[bytes, tuple[str, ...]] = (_locator(raw), ())
    else:
        names = _in_order(value)
        packed = [_locator(raw)]
        for name in names:
            item = value[name]
            if item is None:
                packed.append(_NULL)
                continue
            key = item if type(item) is str else dumps(item)
            digest = _fields.get(key)
            if digest is None:
                digest = _locator(key if isinstance(key, bytes) else dumps(item))
                _remember(_fields, key, digest)
            packed.append(digest)
        found = (b"".join(packed), names)
    _remember(_sections, raw, found)
    return found


def encode_document(doc: dict[str, Any], dumps: Dumps = canonical.dumps) -> tuple[bytes, bytes]:
    """A version document's canonical bytes and its packed section and field digests, from
    one serialisation: each section is serialised once and its bytes reused for the whole
    document (``canonical`` is compositional), and repeated sections and fields are hashed
    once. ``dumps``: ``canonical.dumps``, or ``canonical.dumps_plain`` for a document the
    caller knows is plain."""
    parts: list[bytes] = []
    packed: list[bytes] = [_FORMAT]
    layout: list[tuple[str, tuple[str, ...]]] = []
    for name in _in_order(doc):
        value = doc[name]
        raw = dumps(value)
        found = _sections.get(raw) or _section(raw, value, dumps)
        parts.append(canonical.member_name(name) + b":" + raw)
        packed.append(found[0])
        layout.append((name, found[1]))
    packed.insert(1, layout_id(tuple(layout)))
    return b"{" + b",".join(parts) + b"}", b"".join(packed)


def field_digests(doc: dict[str, Any], size: int = 32) -> dict[str, Any]:
    """``{section: {"digest": hex, "fields": {field: hex}}}`` for a version document, each
    digest cut to ``size`` bytes (32: the full form of older rows; ``LOCATOR_SIZE``: packed)."""
    out: dict[str, Any] = {}
    for section, value in doc.items():
        fields = value if isinstance(value, dict) else {}
        out[section] = {
            "digest": sha256(canonical.dumps(value))[:size].hex(),
            "fields": {name: sha256(canonical.dumps(v))[:size].hex() for name, v in fields.items()},
        }
    return out


def unpack(packed: bytes) -> dict[str, Any]:
    """Packed digests (this module's format) in the form ``field_digests`` returns; ValueError
    when the bytes are not that format or name a layout this code does not know."""
    if len(packed) < 1 + LAYOUT_ID_SIZE or packed[0] != FORMAT:
        raise ValueError("not packed field digests")
    layout = known_layout(packed[1 : 1 + LAYOUT_ID_SIZE])
    if layout is None:
        raise ValueError("packed field digests of an unknown layout")
    step = LOCATOR_SIZE
    count = sum(1 + len(fields) for _, fields in layout)
    if len(packed) != 1 + LAYOUT_ID_SIZE + count * step:
        raise ValueError("packed field digests of the wrong length")
    pos = 1 + LAYOUT_ID_SIZE
    out: dict[str, Any] = {}
    for section, fields in layout:
        entry: dict[str, Any] = {"digest": packed[pos : pos + step].hex(), "fields": {}}
        pos += step
        for name in fields:
            entry["fields"][name] = packed[pos : pos + step].hex()
            pos += step
        out[section] = entry
    return out


def stored_field_digests(as_json: Any, packed: bytes | None) -> tuple[dict[str, Any], int]:
    """A row's kept digests, whichever form it has, and the size of each digest in bytes."""
    if packed is not None:
        return unpack(bytes(packed)), LOCATOR_SIZE
    return (as_json or {}), 32
