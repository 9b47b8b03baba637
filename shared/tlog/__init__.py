"""The tenant's verifiable log: sealing checkpoints (``sealing``), reading entries and proofs
(``proofs``), the signing keys (``keys``) and the anchors outside the database (``anchors``).

The operations are importable from here (``tlog.seal``, ``tlog.inclusion``); each loads
only its own module on first use, so reading a proof never loads what sealing needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "origin": "keys",
    "verify_note": "sealing",
    "check_anchored": "sealing",
    "seal_in": "sealing",
    "seal": "sealing",
    "latest_checkpoint": "proofs",
    "checkpoint_at": "proofs",
    "entry": "proofs",
    "inclusion": "proofs",
    "consistency": "proofs",
    "public_keys": "proofs",
    "version_proof": "proofs",
    "tile_checkpoint": "tile_reads",
    "tile": "tile_reads",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
