"""terraform/ read offline (python-hcl2): the blocks of every .tf file, merged by kind."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2

TF = Path(__file__).resolve().parents[2] / "terraform"

# The settings of the server functions-framework runs in each function's container.
SERVER_SETTINGS = ("WORKERS", "THREADS", "PLANT_DB_POOL_SIZE", "CLOUD_RUN_TIMEOUT_SECONDS")


def load(folder: Path = TF) -> dict[str, list[Any]]:
    """The blocks of every .tf file of one module (the root by default)."""
    merged: dict[str, list[Any]] = {}
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    for path in sorted(folder.glob("*.tf")):
        with path.open() as handle:
            for key, value in hcl2.load(handle, serialization_options=options).items():
                if not key.startswith("__"):
                    merged.setdefault(key, []).extend(value)
    return merged


def resources(doc: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for block in doc.get("resource", []):
        for k, named in block.items():
            if k == kind:
                out.update(named)
    return out


def function_specs(doc: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """``local.functions``: each function's entry point, size and request timeout."""
    for block in doc["locals"]:
        if "functions" in block:
            return block["functions"]
    raise AssertionError("no local.functions")


def server_settings() -> dict[str, str]:
    """The server settings Terraform gives every function, as literals in its environment."""
    function = resources(load(), "google_cloudfunctions2_function")["function"]
    env = json.dumps(function["service_config"][0]["environment_variables"])
    pairs = dict(re.findall(r'(\w+) = \\"([^"\\]*)\\"', env))
    return {name: pairs[name] for name in SERVER_SETTINGS if name in pairs}
