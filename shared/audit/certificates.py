"""The certificates pass: each certificate's signature verifies and certifies bytes the log
holds, and its certifier wrote none of what they certified (four eyes, L0-06)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.audit import reads, versions
from shared.audit.state import AuditState, Row
from shared.integrity import canonical, dsse
from shared.rules import four_eyes

# Per entity: its version documents by number (None where the bytes are not JSON), and its
# certificates' (log index, certified version) in log order
_Histories = dict[str, tuple[dict[int, dict[str, Any] | None], list[tuple[int, int]]]]


def checked(state: AuditState, rows: Iterable[Row]) -> None:
    """The certificates among ``rows`` not already reported, then four eyes over those that
    verify."""
    verifiers = {v.key_id_hex: v for v in state.keyring.verifiers}
    certificates = [
        r for r in rows if r.entry_type == "certificate" and r.index not in state.reported
    ]
    certified_digests = reads.digests(state, {(r.entity_id, r.version) for r in certificates})
    verified: list[tuple[Row, dict[str, Any]]] = []
    for row in certificates:
        where = dict(
            entity_type=row.kind,
            entity_id=row.entity_id,
            version=row.version,
            log_index=row.index,
        )
        try:
            envelope = canonical.loads(row.body)
            statement = canonical.loads(dsse.verify_envelope(envelope, verifiers))
            subject = statement["subject"][0]["digest"]["sha256"]
        except (
            canonical.CanonicalError,
            dsse.EnvelopeError,
            KeyError,
            TypeError,
            IndexError,
        ) as exc:
            state.add("certificate_invalid", f"certificate at {row.index}: {exc}", **where)
            continue
        column = _contradicted(state, row, statement)
        if column is not None:
            versions.column_finding(state, row, column)
            continue
        certified = certified_digests.get((row.entity_id, row.version))
        if certified is None or certified.hex() != subject:
            state.add(
                "certificate_invalid",
                f"certificate at {row.index} certifies bytes the log does not hold",
                **where,
            )
            continue
        verified.append((row, statement))
    _four_eyes(state, verified)


def _contradicted(state: AuditState, row: Row, statement: dict[str, Any]) -> str | None:
    """The first of a certificate row's columns that its signed statement's predicate
    contradicts (tenant, entity type, entity id, certified version), if any."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        return None  # a statement without one fails the subject check
    signed = (
        ("tenant_id", predicate.get("tenant"), state.tenant),
        ("kind", predicate.get("entity_type"), row.kind),
        ("entity_id", predicate.get("entity_id"), row.entity_id),
        ("version", predicate.get("version"), row.version),
    )
    for column, said, stored in signed:
        if said != stored:
            return column
    return None


def _four_eyes(state: AuditState, verified: list[tuple[Row, dict[str, Any]]]) -> None:
    """L0-06 re-checked over the log: each certificate's certifier, as signed, wrote none of
    the content it certifies since that content was last certified (by a certificate logged
    before it), as ``four_eyes`` defines content and its authors."""
    if not verified:
        return
    histories = _histories(state, {row.entity_id for row, _ in verified})
    for row, statement in verified:
        versions, certificates = histories.get(row.entity_id, ({}, []))
        read = [versions[v] for v in sorted(versions) if v <= row.version]
        docs = [doc for doc in read if doc is not None]
        if not docs or len(docs) != len(read):
            continue  # a version that cannot be read is named as altered
        predicate = statement.get("predicate")
        certifier = predicate.get("certifier") if isinstance(predicate, dict) else None
        earlier = [version for index, version in certificates if index < row.index]
        authors = four_eyes.content_authors(docs, earlier)
        if certifier in authors:
            state.add(
                "rule_violation",
                f"certificate at {row.index}: {certifier} certified version {row.version}, "
                "whose content they wrote or amended since it was last certified",
                entity_type=row.kind,
                entity_id=row.entity_id,
                version=row.version,
                log_index=row.index,
                rule=four_eyes.RULE,
                extra={"certifier": certifier, "content_authors": authors},
            )


def _histories(state: AuditState, entity_ids: set[str]) -> _Histories:
    """Per entity, its version documents by number (None where the bytes are not JSON) and
    its certificates' (log index, certified version), in log order."""
    rows = reads.by_ids(
        state,
        "SELECT CAST(entity_id AS text), idx, entry_type, version, "
        "CASE WHEN entry_type = 'version' THEN body END FROM log_entries "
        "WHERE tenant_id = current_setting('plant.tenant') "
        "AND entity_id = ANY(CAST(:ids AS uuid[])) ORDER BY idx",
        entity_ids,
    )
    state.rows_read += len(rows)
    out: _Histories = {}
    for entity_id, index, entry_type, version, body in rows:
        versions, certificates = out.setdefault(entity_id, ({}, []))
        if entry_type == "certificate":
            certificates.append((int(index), int(version)))
            continue
        try:
            doc = canonical.read(bytes(body))
        except ValueError:
            doc = None
        versions.setdefault(int(version), doc if isinstance(doc, dict) else None)
    return out
