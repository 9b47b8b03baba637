"""The recorded digests of the SQL functions and policies are those a freshly migrated
database holds: a migration that changes a function without regenerating
``shared/audit/catalog_digests.py`` fails here (the message is the file to write)."""

from __future__ import annotations

from pathlib import Path

from shared.audit import defences
from shared.storage.engine import database

RECORDED = Path(defences.__file__).with_name("catalog_digests.py")


def test_recorded_digests_match_a_freshly_migrated_database(database_url: str) -> None:
    with database().engine.connect() as conn:
        source = defences.generated(conn)
    assert source == RECORDED.read_text(), source
