"""Every stored part of a current-version proof in one statement (``plant_current_proof``,
migrations 0018, 0025 and 0028): the checkpoint, the entry at its last index, the entity's
newest version and certificate entries below it, the map's strata on the entity's key path
and the log nodes its three inclusion paths fold from. One round trip, one snapshot; the
caller computes the proof from these bytes with the same code that reads them one statement
at a time. A caller holding a checkpoint's fixed parts (``held``) gets only the entity's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from shared.integrity import heads_map
from shared.integrity.sparse_merkle import Address
from shared.storage import direct, map_strata, tree

# Run on the driver's cursor (``direct``): a proof is served per request, and SQLAlchemy's
# execution context and result objects were about a quarter of its client CPU.
_CURRENT = (
    "SELECT * FROM plant_current_proof(%s, CAST(%s AS uuid), CAST(%s AS bigint), "
    "CAST(%s AS bigint), CAST(%s AS bigint))"
)
# A caller holding a checkpoint holds the log's levels from the first narrower than this whole
# (about 2,000 nodes at 1,000,000 leaves), read once per seal.
HELD_WIDTH = 1024


@dataclass(frozen=True)
class Version:
    """The entity's newest version entry below the commit, as the log stores it."""

    index: int
    kind: str
    version: int
    leaf_hash: bytes
    body: bytes


@dataclass(frozen=True)
class CurrentParts:
    """What ``plant_current_proof`` read: the checkpoint (size, signed note); the entry at
    size - 1 (type and body; None when missing); the newest version and certificate entries
    of the entity below size - 1; and the stored nodes its proofs need: the map's strata
    on the entity's key path as read (``map_nodes`` reads them by address, raising
    MalformedStratum for one that is not whole records), the log's by (level, index).

    ``held``: the checkpoint is the one the caller said it holds, so of the log only the
    version's and certificate's siblings below level ``top`` were read; otherwise, for a
    caller holding any, every node from level ``top`` up too."""

    size: int
    held: bool
    top: int
    note: str
    commit: tuple[str, bytes] | None
    version: Version | None
    certificate: tuple[int, bytes] | None
    key: bytes
    map_path: bytes
    log_nodes: dict[tree.Key, bytes]

    @property
    def map_nodes(self) -> map_strata.Strata:
        return path_strata(self.key, self.map_path)


class ReadNodes:
    """The nodes read (and the log nodes ``held`` from an earlier read of the same
    checkpoint), as the ``NodeReader`` and ``NodeStore`` the proof code asks: a key it asks
    for that was not read is absent, exactly as an unstored node would be."""

    def __init__(self, parts: CurrentParts, held: Mapping[tree.Key, bytes] | None = None) -> None:
        self.parts = parts
        self.held = held or {}

    def get_nodes(self, keys: Sequence[tree.Key]) -> Mapping[tree.Key, bytes]:
        nodes, held = self.parts.log_nodes, self.held
        out = {}
        for key in keys:
            node = nodes.get(key)
            if node is None:
                node = held.get(key)
            if node is not None:
                out[key] = node
        return out

    def get_paths(self, keys: Sequence[bytes]) -> Mapping[Address, bytes]:
        return self.parts.map_nodes


def current_parts(
    conn: Connection, tenant: str, entity_id: str, size: int | None, held: int | None = None
) -> CurrentParts | None:
    """The parts of ``entity_id``'s proof against the checkpoint of ``size`` (None: the
    latest), read under ``tenant``; None when there is no such checkpoint. ``held``: the size
    of the checkpoint whose fixed parts the caller holds (0: none yet, send them), or None
    for a caller that holds none and wants none (a bundle's proofs)."""
    rows = direct.run(conn, _CURRENT, (tenant, entity_id, size, held, HELD_WIDTH))
    if not rows:
        return None
    row = rows[0]
    cp_size, cp_held, top, note, commit_type, commit_body, v_idx, v_kind, v_number = row[:9]
    v_leaf, v_body, c_idx, c_body, map_path, log_path = row[9:]
    return CurrentParts(
        size=int(cp_size),
        held=bool(cp_held),
        top=int(top),
        note=note,
        commit=None if commit_type is None else (commit_type, bytes(commit_body)),
        version=None
        if v_idx is None
        else Version(int(v_idx), v_kind, int(v_number), bytes(v_leaf), bytes(v_body)),
        certificate=None if c_idx is None else (int(c_idx), bytes(c_body)),
        key=heads_map.entity_key(uuid.UUID(entity_id)),
        map_path=bytes(map_path),
        log_nodes=tree.split_nodes(bytes(log_path)),
    )


def path_strata(key: bytes, packed: bytes) -> map_strata.Strata:
    """The strata of one packed value (per stratum: its level in 2 bytes, its length in 4,
    its stored bytes), each under its prefix of ``key``; MalformedStratum when one is not
    whole records in order."""
    out = map_strata.Strata()
    at = 0
    while at < len(packed):
        level = int.from_bytes(packed[at : at + 2], "big")
        size = int.from_bytes(packed[at + 2 : at + 6], "big")
        out.add(key[:level], packed[at + 6 : at + 6 + size])
        at += 6 + size
    return out
