"""The ``plant`` command (``commands``: serve, token, migrate, keys, export, audit, rules;
``offline``: the verify checks), the embedded database it starts locally, its first-run
preparation and its progress lines. ``main`` and ``parser`` load the commands on first use."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["main", "parser"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.commands"), name)
