"""What a fresh interpreter has loaded after running some code."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.config import ROOT


def modules_after(code: str) -> list[str]:
    """``sys.modules`` of a new ``python -c`` that ran ``code`` from the repository's root."""
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
