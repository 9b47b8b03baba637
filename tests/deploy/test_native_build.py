"""The project's C extension (native/, issue 27) reaches every place the code runs: the
functions' source archive carries native/'s source (not a local build's leftovers) and the
requirements.txt that Cloud Functions' build, `make` and Cloud Build's migrate step install
names it, so pip compiles it with the runtime's own compiler and headers."""

from __future__ import annotations

from pathlib import Path

from tests.support.terraform_doc import load

ROOT = Path(__file__).resolve().parents[2]


def _archive_excludes() -> list[str]:
    for block in load().get("data", []):
        source = block.get("archive_file", {}).get("source")
        if source is not None:
            return list(source["excludes"])
    raise AssertionError("no source archive")


def test_requirements_install_the_extension_and_the_archive_carries_its_source():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "./native" in lines
    excludes = _archive_excludes()
    assert "native" not in excludes
    assert {"native/build", "native/plant_map_native.egg-info"} <= set(excludes)
    setup = (ROOT / "native" / "setup.py").read_text()
    sources = sorted(path.name for path in (ROOT / "native").glob("*.[ch]"))
    assert "plant_map_native.c" in sources and "plant_native.h" in sources
    for name in sources:  # a source the build leaves out would be missing at run time
        assert f'"{name}"' in setup, name


def test_make_rebuilds_the_extension_when_any_of_its_sources_changes():
    """`make run` and `make test` reinstall the requirements (and so recompile native/)
    when a stamp is older than a source: a C file missing from the rule would leave a stale
    extension in the venv after an edit."""
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = makefile.split("$(RUN_STAMP):", 1)[1].split("\n\t$(BIN)", 1)[0]
    assert "$(wildcard native/*.c native/*.h)" in prerequisites
