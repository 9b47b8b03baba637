"""The README's walkthrough works as written: its ``sh`` blocks marked ``<!-- walkthrough -->``
run in bash (``set -euo pipefail``) against a live `plant serve`, changed only where the server
listens and where the venv's `plant` is, and end with `plant verify` printing VERIFIED."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.plant_server import PLANT, PlantServer

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- walkthrough -->\s*```sh\n(.*?)```", re.S)
# What the README assumes: `make run`'s address and the venv at the repository's root.
README_API = "http://localhost:8080"
README_PLANT = ".venv/bin/plant"


def walkthrough(readme: str) -> str:
    """The marked blocks, in order, as one script."""
    blocks = BLOCK.findall(readme)
    assert len(blocks) >= 4, "the README's walkthrough blocks are missing their marker"
    return "\n".join(blocks)


@pytest.fixture
def server(database_url: str, tmp_path: Path):
    """`plant serve` on the session's database, sharing its keys (PLANT_DATA_DIR)."""
    plant = PlantServer(
        database_url=database_url,
        data_dir=Path(os.environ["PLANT_DATA_DIR"]),
        log_dir=tmp_path,
    )
    plant.start()
    yield plant
    plant.stop()


def test_the_readme_walkthrough_ends_with_a_verified_bundle(server, tmp_path):
    script = walkthrough((ROOT / "README.md").read_text(encoding="utf-8"))
    assert script.count(README_API) == 1 and README_PLANT in script
    script = script.replace(README_API, server.base).replace(README_PLANT, str(PLANT))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=tmp_path,  # not the repository: nothing may depend on where it is run from
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    lines = out.splitlines()
    # Both certifications, then the agent in its team.
    assert lines[:2] == ["certified", "certified"], out
    # The amendment's cascade takes the certified job role back to pending_certification.
    cascade = next(line for line in lines if line.startswith("[{"))
    assert '"kind": "job-roles"' in cascade and '"pending_certification"' in cascade, out
    # Four eyes: the amending author is refused as a certifier, naming the rule.
    assert "L0-06" in lines, out
    assert "2" in lines  # the batch certified both again
    assert "0" in lines  # the full audit found nothing
    assert lines[-1].startswith("VERIFIED:"), out
    assert "NOT VERIFIED" not in out
