"""Every stored part of a current-version proof in one statement (``plant_current_proof``,
migrations 0018, 0025, 0028 and 0032): the checkpoint, the entry at its last index, the
entity's newest version and certificate entries below it, the map's strata on the entity's
key path and the log nodes its three inclusion paths fold from. One round trip, one snapshot;
the caller computes the proof from these bytes with the same code that reads them one
statement at a time. A caller holding a checkpoint's fixed parts (``held``), the map's top
strata among them, gets only the entity's.

The function answers in one packed value, split by ``proof_reply``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.engine import Connection

from shared.integrity import heads_map
from shared.integrity.sparse_merkle import Address
from shared.storage import direct, map_strata, tree
from shared.storage.proof_reply import CurrentParts, path_strata, split

# Run on the driver's cursor (``direct``): a proof is served per request, and SQLAlchemy's
# execution context and result objects were about a quarter of its client CPU.
_CURRENT = (
    "SELECT plant_current_proof(%s, CAST(%s AS uuid), CAST(%s AS bigint), CAST(%s AS bigint), "
    "CAST(%s AS bigint), CAST(%s AS integer), CAST(%s AS integer))"
)
# A caller holding a checkpoint holds the log's levels from the first narrower than this whole
# (about 2,000 nodes at 1,000,000 leaves), read once per seal.
HELD_WIDTH = 1024
# ... and the map's strata of the levels above this one whole: the root stratum and the 256
# below it (4.3 MB at 1,000,000 keys, both levels full), read once per seal; the function
# holds at most 2.
HELD_STRATA = 2
NO_MORE_STRATA = 33  # ``start`` when the strata held already end the key's path


class ReadNodes:
    """The nodes read (and the log nodes and map strata ``held`` from an earlier read of the
    same checkpoint), as the ``NodeReader`` and ``NodeStore`` the proof code asks: a key it
    asks for that was not read is absent, exactly as an unstored node would be."""

    def __init__(
        self,
        parts: CurrentParts,
        held: Mapping[tree.Key, bytes] | None = None,
        strata: map_strata.Strata | None = None,
    ) -> None:
        self.parts = parts
        self.held = held or {}
        self.strata = strata

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
        return path_strata(self.parts.key, self.parts.map_path, self.strata)


def current_parts(
    conn: Connection,
    tenant: str,
    entity_id: str,
    size: int | None,
    held: int | None = None,
    strata: int = 0,
    start: int = 0,
) -> CurrentParts | None:
    """The parts of ``entity_id``'s proof against the checkpoint of ``size`` (None: the
    latest), read under ``tenant``; None when there is no such checkpoint. ``held``: the size
    of the checkpoint whose fixed parts the caller holds (0: none yet, send them), or None
    for a caller that holds none and wants none (a bundle's proofs); ``strata``: how many
    levels of the map's strata the caller holds with it (sent whole when it is not the
    latest), and ``start``: the level the key's path is read from when it is."""
    params = (tenant, entity_id, size, held, HELD_WIDTH, strata, start)
    rows = direct.run(conn, _CURRENT, params)
    reply = rows[0][0] if rows else None
    if reply is None:
        return None
    return split(bytes(reply), heads_map.entity_key(uuid.UUID(entity_id)))


def start_below(key: bytes, held: map_strata.Strata) -> int:
    """The level the key's path is read from when the caller holds ``held``'s levels: the
    first below them, or ``NO_MORE_STRATA`` when one of them is not stored (no stratum below
    a missing one is on the path)."""
    for level in range(HELD_STRATA):
        if key[:level] not in held.rows:
            return NO_MORE_STRATA
    return HELD_STRATA
