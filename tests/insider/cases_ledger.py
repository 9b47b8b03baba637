"""The matrix's rows on the ledger's tables, column by column (issue 22, "Must show"): each
row one attack on the fixture tenant (tests/insider/conftest.py gives its layout) and the one
finding that names it. The rows the first matrix had are in tests/insider/test_matrix.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.audit import versions
from shared.integrity import canonical, digests, merkle
from shared.registry import documents
from tests.insider.attacks import Attack, Case, sql
from tests.insider.conftest import Tenant

Expect = Callable[[Tenant], dict[str, Any]]
_ENTRY = "UPDATE log_entries SET {set} WHERE tenant_id = :t AND idx = :i"


def _at(entity: int, version: int, entry_type: str = "version") -> Callable[[Tenant], int]:
    return lambda t: t.index(t.skills[entity], version, entry_type)


def _column(set_sql: str, entity: int, version: int, entry_type: str = "version") -> Attack:
    return sql(_ENTRY.format(set=set_sql), i=_at(entity, version, entry_type))


def _row(field: str, entity: int, version: int, entry_type: str = "version") -> Expect:
    """An entry's column that contradicts its bytes."""
    return lambda t: dict(
        kind="altered", section="row", field=field, entity_id=t.skills[entity],
        log_index=t.index(t.skills[entity], version, entry_type),
    )  # fmt: skip


def _changed(entity: int, version: int) -> Expect:
    """A version's bytes changed: named by entity, version and index, its field not (the
    locators beside it are not signed)."""
    return lambda t: dict(
        kind="altered", entity_id=t.skills[entity], version=version,
        log_index=t.index(t.skills[entity], version), field=None,
        field_unnamed=versions.UNNAMED,
    )  # fmt: skip


def _receipt(reason: str, entity: int, version: int) -> Expect:
    return lambda t: dict(
        kind="receipt_invalid", reason=reason, entity_id=t.skills[entity], version=version,
        log_index=t.index(t.skills[entity], version),
    )  # fmt: skip


def _body(t: Tenant, index: int) -> bytes:
    query = "SELECT body FROM log_entries WHERE tenant_id = :t AND idx = :i"
    return bytes(t.one(query, i=index)[0])


def _consistent(old: str, new: str, entity: int, version: int, *, nodes: bool) -> Attack:
    """A body edited with its digest and leaf hash made to match; with ``nodes``, its stored
    level-0 hash and every node above it recomputed too (the tree then rebuilds a root no
    checkpoint signed)."""

    def run(t: Tenant, attack: Callable[..., None]) -> None:
        index = t.index(t.skills[entity], version)
        body = _body(t, index).replace(old.encode(), new.encode())
        leaf = merkle.leaf_hash(body)
        attack(_ENTRY.format(set="body = :b, digest = :d, leaf_hash = :l"), b=body,
               d=digests.sha256(body), l=leaf, t=t.name, i=index)  # fmt: skip
        if nodes:
            _rebuild_nodes(t, attack, index, leaf)

    return run


def _rebuild_nodes(t: Tenant, attack: Callable[..., None], index: int, leaf: bytes) -> None:
    """Entry ``index``'s stored leaf set to ``leaf`` and each stored ancestor recomputed."""
    nodes = {
        (int(level), int(i)): bytes(h)
        for level, i, h in _all(t, "SELECT level, idx, hash FROM log_nodes WHERE tenant_id = :t")
    }
    nodes[(0, index)] = leaf
    level, at = 0, index
    while (level, at) in nodes:
        attack("UPDATE log_nodes SET hash = :h WHERE tenant_id = :t AND level = :l AND idx = :i",
               h=nodes[(level, at)], t=t.name, l=level, i=at)  # fmt: skip
        sibling = nodes.get((level, at ^ 1))
        if sibling is None or (level + 1, at // 2) not in nodes:
            break
        pair = (nodes[(level, at)], sibling) if at % 2 == 0 else (sibling, nodes[(level, at)])
        level, at = level + 1, at // 2
        nodes[(level, at)] = merkle.node_hash(*pair)


def _all(t: Tenant, query: str) -> list[Any]:
    from sqlalchemy import text

    with t.superuser.connect() as conn:
        return list(conn.execute(text(query), {"t": t.name}).all())


def forged_locators(t: Tenant, attack: Callable[..., None]) -> None:
    """Skill 6's version 2: its description rewritten, and its locators rewritten to those of
    a document whose description is the new one and whose name differs, so that they blame
    ``identity.name`` for the change."""
    index = t.index(t.skills[6], 2)
    body = _body(t, index).replace(b"does 6 well", b"does 6 badly")
    doc = canonical.read(body)
    doc["identity"]["name"] = "not the name"
    attack(_ENTRY.format(set="body = :b, field_hashes = :f"), b=body,
           f=documents.encode(doc).field_hashes, t=t.name, i=index)  # fmt: skip


def _forged_tail(t: Tenant, attack: Callable[..., None]) -> None:
    """A well-formed version 3 of skill 3 appended at the tail: correct digest, leaf hash,
    chain and locators, its head moved to it; no receipt (the insider has no key)."""
    index = t.index(t.skills[3], 2)
    body = _body(t, index)
    doc = canonical.read(body)
    doc["versioning"]["version"] = 3
    doc["lifecycle"]["status"] = "certified"
    encoded = documents.encode(doc)
    size = t.size()
    attack(
        "INSERT INTO log_entries (tenant_id, idx, entry_type, kind, entity_id, version, body, "
        "digest, leaf_hash, prev_digest, field_hashes, actor) VALUES (:t, :i, 'version', "
        "'skill', CAST(:e AS uuid), 3, :b, :d, :l, :p, :f, 'mallory')",
        t=t.name, i=size, e=t.skills[3], b=encoded.body, d=digests.sha256(encoded.body),
        l=merkle.leaf_hash(encoded.body), p=digests.sha256(body), f=encoded.field_hashes,
    )  # fmt: skip
    attack("UPDATE log_heads SET size = size + 1 WHERE tenant_id = :t", t=t.name)
    attack("UPDATE entity_heads SET version = 3, log_index = :i, status = 'certified' "
           "WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)", i=size, t=t.name,
           e=t.skills[3])  # fmt: skip


def _head(column_set: str, entity: int, **fixed: Any) -> Attack:
    return sql(
        f"UPDATE entity_heads SET {column_set} WHERE tenant_id = :t "
        "AND entity_id = CAST(:e AS uuid)",
        e=lambda t: t.skills[entity],
        **fixed,
    )


def _head_finding(field: str, entity: int, version: int, **more: Any) -> Expect:
    return lambda t: dict(
        kind="altered", section="entity_heads", field=field, entity_id=t.skills[entity],
        version=version, **more,
    )  # fmt: skip


def _checkpoint(size: int) -> Expect:
    return lambda t: dict(kind="checkpoint_invalid", checkpoint_size=size)


def _cutover(t: Tenant) -> dict[str, Any]:
    return dict(kind="altered", section="receipt_cutover", field="size", cutover_size=t.size())


def _made_up_cutover(t: Tenant, attack: Callable[..., None], *, receipts: bool) -> None:
    """A cut-over row made up over the whole log: with every receipt deleted (the next seal
    would sign them all anew), or over a forged tail version."""
    if receipts:
        attack("DELETE FROM log_receipts WHERE tenant_id = :t", t=t.name)
    else:
        _forged_tail(t, attack)
    attack("INSERT INTO receipt_cutover VALUES (:t, :s)", t=t.name, s=t.size())


def _map(t: Tenant) -> dict[str, Any]:
    return dict(kind="map_invalid")


TAIL = 39  # skill 12's version 2: acknowledged, not sealed

CASES = [
    # log_entries, column by column, on skill 6's version 2 (sealed, under checkpoint 32)
    Case("log_entries", "kind column changed on a version",
         _column("kind = 'agent'", 6, 2), _row("kind", 6, 2), incremental=False),
    Case("log_entries", "entity_id column changed",
         _column("entity_id = gen_random_uuid()", 6, 2),
         lambda t: dict(kind="altered", section="row", field="entity_id",
                        log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "version column changed",
         _column("version = 7", 6, 2),
         lambda t: dict(kind="altered", section="row", field="version",
                        entity_id=t.skills[6], log_index=t.index(t.skills[6], 2)),
         incremental=False),
    Case("log_entries", "digest column changed",
         _column("digest = sha256('x')", 6, 2), _row("digest", 6, 2), incremental=False),
    Case("log_entries", "leaf_hash column changed",
         _column("leaf_hash = sha256('x')", 6, 2), _row("leaf_hash", 6, 2), incremental=False),
    Case("log_entries", "prev_digest column changed",
         _column("prev_digest = sha256('x')", 6, 2),
         lambda t: dict(kind="chain_broken", entity_id=t.skills[6], version=2,
                        log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "prev_digest set on a version 1",
         _column("prev_digest = sha256('x')", 6, 1),
         lambda t: dict(kind="chain_broken", entity_id=t.skills[6], version=1,
                        log_index=t.index(t.skills[6], 1)), incremental=False),
    Case("log_entries", "entry_type column changed to certificate",
         _column("entry_type = 'certificate'", 6, 2),
         lambda t: dict(kind="certificate_invalid", entity_id=t.skills[6],
                        log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "body made invalid JSON (digest, leaf kept)",
         _column("body = convert_to('not json', 'UTF8')", 6, 2),
         lambda t: dict(kind="altered", entity_id=t.skills[6], version=2,
                        log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "a version 1 body rewritten (digest, leaf kept)",
         _column("body = convert_to(replace(convert_from(body, 'UTF8'), 'does 8', 'does 9'), "
                 "'UTF8')", 8, 1),
         _changed(8, 1), incremental=False),
    Case("log_entries", "a body rewritten with its digest and leaf hash",
         _consistent("does 6 well", "does 6 badly", 6, 2, nodes=False),
         _changed(6, 2), incremental=False),
    Case("log_entries", "locators forged to blame identity.name for a description change",
         forged_locators, _changed(6, 2), incremental=False),  # short: test_locators.py
    Case("log_entries", "locators alone rewritten (the bytes intact): not evidence",
         _column("field_hashes = '\\x01ffff'::bytea", 6, 2),
         lambda t: {}),  # no finding: the audit reads them for nothing
    Case("log_entries", "actor column changed",
         _column("actor = 'mallory'", 6, 2),
         lambda t: {}),  # nothing reads it: who wrote is the bytes' audit_trail.actor
    Case("log_entries", "created_at column changed on a version",
         _column("created_at = '2001-01-01'", 6, 2),
         lambda t: {}),  # nothing reads it: the API serves the receipt's time (test_served)
    Case("log_entries", "a sealed entry deleted",
         sql("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i", i=_at(6, 2)),
         lambda t: dict(kind="missing", log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "a sealed entry moved to another tenant",
         # a tenant of its own (:t-elsewhere): a shared name collides on (tenant_id, idx) when
         # the same case ran before in this database (the compiled twin runs the matrix too)
         _column("tenant_id = :t || '-elsewhere'", 6, 2),
         lambda t: dict(kind="missing", log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "a sealed entry moved past the log's size",
         sql(_ENTRY.format(set="idx = 1000"), i=_at(6, 2)),
         lambda t: dict(kind="missing", log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_entries", "a certificate's body rewritten",
         _column("body = convert_to(replace(convert_from(body, 'UTF8'), 'in-toto', "
                 "'in-totO'), 'UTF8')", 1, 2, "certificate"),
         lambda t: dict(kind="certificate_invalid", entity_id=t.skills[1],
                        log_index=t.index(t.skills[1], 2, "certificate")), incremental=False),
    Case("log_entries", "a certificate deleted",
         sql("DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i",
             i=_at(1, 2, "certificate")),
         lambda t: dict(kind="missing", log_index=t.index(t.skills[1], 2, "certificate")),
         incremental=False),
    Case("log_entries", "a certificate's version column changed",
         _column("version = 1", 1, 2, "certificate"), _row("version", 1, 2, "certificate"),
         incremental=False),
    Case("log_entries", "a map commit's body rewritten",
         sql(_ENTRY.format(set="body = convert_to(replace(convert_from(body, 'UTF8'), "
                                "'\"', '\"x'), 'UTF8')"), i=31),
         lambda t: dict(kind="altered", log_index=31), incremental=False),
    Case("log_entries", "a map commit deleted",
         sql("DELETE FROM log_entries WHERE tenant_id = :t AND idx = 31"),
         lambda t: dict(kind="missing", log_index=31), incremental=False),
    Case("log_entries", "the unsealed audit report rewritten",
         sql(_ENTRY.format(set="body = convert_to(replace(convert_from(body, 'UTF8'), "
                                "'\"full\"', '\"incremental\"'), 'UTF8')"), i=38),
         lambda t: dict(kind="altered", log_index=38)),
    Case("log_entries", "the unsealed tail version rewritten consistently",
         _consistent("does 12 well", "does 12 badly", 12, 2, nodes=False),
         _receipt("leaf_mismatch", 12, 2)),
    Case("log_entries", "the unsealed tail version's body rewritten (leaf kept)",
         _column("body = convert_to(replace(convert_from(body, 'UTF8'), 'does 12 well', "
                 "'does 12 badly'), 'UTF8')", 12, 2),
         lambda t: dict(kind="altered", entity_id=t.skills[12], version=2, log_index=TAIL)),
    Case("log_entries", "the unsealed tail version deleted",
         sql("DELETE FROM log_entries WHERE tenant_id = :t AND idx = 39"),
         lambda t: dict(kind="missing", log_index=TAIL)),
    Case("log_entries", "a well-formed version forged at the tail",
         _forged_tail,
         lambda t: dict(kind="receipt_missing", entity_id=t.skills[3], version=3,
                        log_index=t.size()), short=True),
    # a body and every node above it rewritten: the receipt no longer matches the leaf
    Case("log_nodes", "a body and every node above it rewritten (under checkpoint 32)",
         _consistent("does 6 well", "does 6 badly", 6, 2, nodes=True),
         _receipt("leaf_mismatch", 6, 2), incremental=False, short=True,
         extra=(dict(kind="checkpoint_invalid", checkpoint_size=32),)),
    Case("log_nodes", "a body and every node rewritten under the latest checkpoint",
         _consistent("does 2 well", "does 2 badly", 2, 3, nodes=True),
         _receipt("leaf_mismatch", 2, 3), incremental=False),
    Case("log_nodes", "a level-0 node deleted",
         sql("DELETE FROM log_nodes WHERE tenant_id = :t AND level = 0 AND idx = 20"),
         lambda t: dict(kind="missing", section="log_nodes", level=0, node_index=20),
         incremental=False),
    Case("log_nodes", "a level-2 node altered",
         sql("UPDATE log_nodes SET hash = sha256('x') WHERE tenant_id = :t AND level = 2 "
             "AND idx = 1"),
         lambda t: dict(kind="altered", section="log_nodes", level=2, node_index=1),
         incremental=False),
    Case("log_nodes", "a stray level-3 node past the sealed size",
         sql("INSERT INTO log_nodes (tenant_id, level, idx, hash) VALUES (:t, 3, 9, sha256('s'))"),
         lambda t: dict(kind="inserted", section="log_nodes", level=3, node_index=9)),
    # log_heads
    Case("log_heads", "the log's counter raised by one (an empty slot)",
         sql("UPDATE log_heads SET size = size + 1 WHERE tenant_id = :t"),
         lambda t: dict(kind="missing", log_index=t.size())),
    Case("log_heads", "the log's counter row deleted",
         sql("DELETE FROM log_heads WHERE tenant_id = :t"),
         lambda t: dict(kind="rollback", section="log_heads", field="size")),
    # entity_heads, column by column (skill 5: version 2 at index 21)
    Case("entity_heads", "status column changed", _head("status = 'certified'", 5),
         _head_finding("status", 5, 2), incremental=False),
    Case("entity_heads", "category column changed", _head("category = 'language'", 5),
         _head_finding("category", 5, 2), incremental=False),
    Case("entity_heads", "unique_key column changed", _head("unique_key = 'name:x'", 5),
         _head_finding("unique_key", 5, 2), incremental=False),
    Case("entity_heads", "kind column changed", _head("kind = 'agent'", 5),
         _head_finding("kind", 5, 2), incremental=False),
    Case("entity_heads", "first_index column changed", _head("first_index = 7", 5),
         _head_finding("first_index", 5, 2), incremental=False),
    Case("entity_heads", "log_index column changed", _head("log_index = 7", 5),
         _head_finding("log_index", 5, 2), incremental=False),
    Case("entity_heads", "version moved forward past the log", _head("version = 9", 5),
         lambda t: dict(kind="altered", section="entity_heads", field="version",
                        entity_id=t.skills[5]), incremental=False),
    Case("entity_heads", "a head inserted for an entity the log never had",
         sql("INSERT INTO entity_heads SELECT tenant_id, gen_random_uuid(), kind, version, "
             "status, 'ghost', category, 'name:ghost', first_index, log_index, created_at, "
             "updated_at FROM entity_heads WHERE tenant_id = :t AND entity_id = CAST(:e AS uuid)",
             e=lambda t: t.skills[5]),
         lambda t: dict(kind="altered", section="entity_heads", field="log_index"),
         incremental=False),
    Case("entity_heads", "the unsealed tail's head moved back to version 1",
         _head("version = 1, log_index = 12", 12),
         lambda t: dict(kind="rollback", section="entity_heads", field="version",
                        entity_id=t.skills[12], version=1, ledger_version=2),
         never=("inserted",)),
    # checkpoints
    Case("checkpoints", "the latest checkpoint deleted",
         sql("DELETE FROM checkpoints WHERE tenant_id = :t AND size = 38"),
         lambda t: dict(kind="rollback")),
    Case("checkpoints", "a middle checkpoint deleted",
         sql("DELETE FROM checkpoints WHERE tenant_id = :t AND size = 32"),
         lambda t: dict(kind="missing", section="checkpoints", checkpoint_size=32)),
    Case("checkpoints", "a checkpoint's root column changed",
         sql("UPDATE checkpoints SET root = sha256('x') WHERE tenant_id = :t AND size = 32"),
         _checkpoint(32), incremental=False),
    Case("checkpoints", "a checkpoint's size column changed",
         sql("UPDATE checkpoints SET size = 33 WHERE tenant_id = :t AND size = 32"),
         _checkpoint(33), incremental=False),
    Case("checkpoints", "a checkpoint forged past the log (unsigned)",
         sql("INSERT INTO checkpoints (tenant_id, size, root, note) SELECT tenant_id, 60, "
             "root, note FROM checkpoints WHERE tenant_id = :t AND size = 38"),
         _checkpoint(60)),
    # log_receipts
    Case("log_receipts", "a sealed entry's receipt deleted",
         sql("DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = :i", i=_at(6, 2)),
         lambda t: dict(kind="receipt_missing", entity_id=t.skills[6], version=2,
                        log_index=t.index(t.skills[6], 2)), incremental=False),
    Case("log_receipts", "a receipt's signature bytes flipped",
         sql("UPDATE log_receipts SET receipt = overlay(receipt placing '\\xff'::bytea "
             "from length(receipt) - 3) WHERE tenant_id = :t AND first_idx = 39"),
         lambda t: dict(kind="receipt_invalid", entity_id=t.skills[12], log_index=TAIL)),
    Case("log_receipts", "another entry's receipt moved onto the tail",
         sql("UPDATE log_receipts SET receipt = (SELECT receipt FROM log_receipts WHERE "
             "tenant_id = :t AND first_idx = 5) WHERE tenant_id = :t AND first_idx = 39"),
         lambda t: dict(kind="receipt_invalid", reason="index_mismatch",
                        entity_id=t.skills[12], log_index=TAIL)),
    Case("log_receipts", "the unsealed report's receipt deleted",
         sql("DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = 38"),
         lambda t: dict(kind="receipt_missing", log_index=38)),
    # receipt_cutover: a tenant written with receipts has none; one made up is named
    Case("receipt_cutover", "a cut-over made up over the whole log, every receipt deleted",
         lambda t, attack: _made_up_cutover(t, attack, receipts=True),
         _cutover, short=True, extra=(dict(kind="receipt_missing", log_index=38),)),
    Case("receipt_cutover", "a cut-over made up over a forged tail version",
         lambda t, attack: _made_up_cutover(t, attack, receipts=False),
         lambda t: {**_cutover(t), "cutover_size": t.size() + 1},
         extra=(dict(kind="receipt_missing", log_index=40),)),
    # heads_map_strata: records of a position byte and a node's 65 bytes (map_strata.py)
    Case("heads_map_strata", "a map node rewritten (the first at depth 4, in the top stratum)",
         sql("UPDATE heads_map_strata SET nodes = set_byte(nodes, r.at, 255 - get_byte(nodes, "
             "r.at)) FROM (SELECT 66 * min(j) + 41 AS at FROM heads_map_strata m, "
             "generate_series(0, length(m.nodes) / 66 - 1) AS j WHERE m.tenant_id = :t "
             "AND m.prefix = ''::bytea AND get_byte(m.nodes, 66 * j) BETWEEN 16 AND 31) AS r "
             "WHERE tenant_id = :t AND prefix = ''::bytea"),
         _map, incremental=False),
    Case("heads_map_strata", "the map's top stratum deleted",
         sql("DELETE FROM heads_map_strata WHERE tenant_id = :t AND prefix = ''::bytea"), _map,
         incremental=False),
    Case("heads_map_strata", "a map stratum's first position rewritten (out of order)",
         sql("UPDATE heads_map_strata SET nodes = set_byte(nodes, 0, 255) "
             "WHERE tenant_id = :t AND prefix = ''::bytea"), _map, incremental=False, short=True),
    # checkpoint_cosignatures
    Case("checkpoint_cosignatures", "a cosignature line forged",
         sql("INSERT INTO checkpoint_cosignatures (tenant_id, size, witness, line) VALUES "
             "(:t, 38, 'w.example', '\u2014 w.example AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')"),
         lambda t: dict(kind="signature_invalid", checkpoint_size=38)),
    # audit_runs, column by column
    Case("audit_runs", "a run's status changed",
         sql("UPDATE audit_runs SET status = 'failed' WHERE tenant_id = :t"),
         lambda t: dict(kind="altered", section="audit_runs", field="status",
                        entity_id=t.baseline["id"])),
    Case("audit_runs", "a run's mode changed",
         sql("UPDATE audit_runs SET mode = 'incremental' WHERE tenant_id = :t"),
         lambda t: dict(kind="altered", section="audit_runs", field="mode",
                        entity_id=t.baseline["id"])),
    Case("audit_runs", "a run's verified_from changed",
         sql("UPDATE audit_runs SET verified_from = 30 WHERE tenant_id = :t"),
         lambda t: dict(kind="altered", section="audit_runs", field="verified_from",
                        entity_id=t.baseline["id"])),
    Case("audit_runs", "a run's checkpoint_size changed",
         sql("UPDATE audit_runs SET checkpoint_size = 16 WHERE tenant_id = :t"),
         lambda t: dict(kind="altered", section="audit_runs", field="checkpoint_size",
                        entity_id=t.baseline["id"])),
    Case("audit_runs", "a run's findings rewritten (count kept)",
         sql("UPDATE audit_runs SET findings = '[{\"kind\": \"x\"}]' WHERE tenant_id = :t"),
         lambda t: dict(kind="altered", section="audit_runs", field="findings_digest",
                        entity_id=t.baseline["id"])),
]  # fmt: skip
