"""Certification: the constitutional gate a version must pass before it is `certified`.

A certificate is a DSSE envelope (payloadType ``application/vnd.in-toto+json``) over an
in-toto Statement v1 whose subject is the certified version's digest (SHA-256 of its stored
canonical bytes) and whose predicate lists every check with its result. The envelope's RFC
8785 bytes are appended to the tenant's log, then a new version records status `certified`
and points at the certificate.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from shared import tlog
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PlantError,
    ValidationFailed,
)
from shared.integrity import canonical, digests, dsse, merkle
from shared.logs import configure
from shared.registry import documents, membership
from shared.registry.attestation import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE
from shared.registry.versions import (
    VersionWrite,
    append_version,
    references,
    write_transaction,
)
from shared.registry.writes import Current, lock_current
from shared.rules import four_eyes, kinds, path_params
from shared.rules.catalogue import BY_ID, CATALOGUE_VERSION, RULES, rules_for
from shared.rules.kinds import Kind
from shared.rules.relations import check_relations, uncertified_uses
from shared.security.principal import READ_ROLES, Principal
from shared.storage import ledger, tree
from shared.storage.engine import database, retry_transient
from shared.tlog import keys, receipts

log = configure().getChild("certify")

MAX_BATCH = 50
CERTIFIABLE = ("draft", "pending_certification", "suspended")


@dataclass(frozen=True)
class Check:
    id: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        rule = BY_ID.get(self.id)
        out = {
            "check": self.id,
            "result": "pass" if self.passed else "fail",
            "message": self.message,
        }
        if rule is not None:
            out["description"] = rule.description
            if not self.passed:
                out["remediation"] = rule.remediation
        return out


def _chain_checks(
    versions: list[ledger.StoredEntry],
    docs: list[dict[str, Any]],
    head_version: int,
    head_index: int,
) -> list[Check]:
    """L0-02, L0-03, L0-04 over the stored bytes of every version of the entity (``docs``:
    those bytes parsed)."""
    amend_ok, chain_ok, chain_msg, amend_msg = True, True, "intact", "complete"
    previous: ledger.StoredEntry | None = None
    for i, (entry, doc) in enumerate(zip(versions, docs, strict=True), start=1):
        record = doc["versioning"]
        if entry.version != i or record["version"] != i:
            chain_ok, chain_msg = False, f"version {i} is missing or out of order"
        if (
            digests.sha256(entry.body) != entry.digest
            or merkle.leaf_hash(entry.body) != entry.leaf_hash
        ):
            chain_ok, chain_msg = False, f"version {entry.version}'s bytes do not match its digest"
        expected_prev = digests.label(previous.digest) if previous else None
        if record["previous_digest"] != expected_prev:
            chain_ok, chain_msg = False, f"version {entry.version} does not link to version {i - 1}"
        if i > 1 and not (record.get("amendment_reason") and record.get("amended_by")):
            amend_ok, amend_msg = (
                False,
                f"version {entry.version} has no amendment reason or author",
            )
        previous = entry
    last = versions[-1] if versions else None
    single = last is not None and last.version == head_version and last.index == head_index
    return [
        Check("L0-02", amend_ok, amend_msg),
        Check("L0-03", chain_ok, chain_msg),
        Check(
            "L0-04",
            single,
            "the head is the latest version"
            if single
            else "the head does not point at the latest version",
        ),
    ]


def _inclusion_check(
    conn: Connection, entry: ledger.StoredEntry, tenant: str
) -> tuple[Check, dict[str, Any] | None]:
    """INTEGRITY-01: the version is in a signed checkpoint and its inclusion proof verifies."""
    last = tree.latest_checkpoint(conn)
    if last is None or entry.index >= last.size:
        return Check("INTEGRITY-01", False, "the version is not in a checkpoint"), None
    checkpoint = tlog.verify_note(last.note, keys.keyring(), tenant)
    proof = merkle.inclusion_proof(tree.DbNodes(conn), entry.index, last.size)
    ok = checkpoint.root == last.root and merkle.verify_inclusion(
        merkle.leaf_hash(entry.body), entry.index, last.size, proof, last.root
    )
    message = (
        f"included at {entry.index} in checkpoint {last.size}" if ok else "inclusion proof fails"
    )
    return Check("INTEGRITY-01", ok, message), {"size": last.size, "root": digests.b64(last.root)}


def _gate_check(kind: Kind, fields: dict[str, Any], refs: dict[str, Any]) -> Check:
    """L0-05: everything the version uses (not mere membership) is certified."""
    uncertified = uncertified_uses(kind, fields, refs)
    if uncertified:
        return Check("L0-05", False, "uses uncertified entities: " + ", ".join(uncertified))
    return Check("L0-05", True, "every entity it uses is certified")


def _four_eyes_check(
    principal: Principal, docs: list[dict[str, Any]], certificates: list[ledger.StoredEntry]
) -> Check:
    """L0-06: the certifier wrote none of the content since it was last certified."""
    authors = four_eyes.content_authors(docs, (c.version for c in certificates))
    written = ", ".join(authors) or "no one"
    if principal.subject in authors:
        return Check(
            four_eyes.RULE,
            False,
            f"{principal.subject} wrote or amended the content since it was last certified "
            f"(content by {written})",
        )
    return Check(
        four_eyes.RULE,
        True,
        f"content since its last certification by {written}; certified by {principal.subject}",
    )


def run_checks(
    conn: Connection, principal: Principal, kind: Kind, cur: Current
) -> tuple[list[Check], dict[str, Any] | None]:
    """Every check of the checklist, passed or failed (results are data)."""
    checks: list[Check] = []
    record = cur.doc["versioning"]
    checks.append(Check("L0-01", bool(record.get("amended_by")), "the version names who made it"))
    versions = ledger.version_entries(conn, cur.head.entity_id)
    docs = [canonical.read(entry.body) for entry in versions]
    checks += _chain_checks(versions, docs, cur.head.version, cur.head.log_index)
    refs = references(conn, kind, cur.fields)
    checks.append(_gate_check(kind, cur.fields, refs))
    checks.append(
        _four_eyes_check(principal, docs, ledger.certificate_entries(conn, cur.head.entity_id))
    )
    violations = check_relations(kind, cur.fields, None, refs, self_id=cur.head.entity_id)
    for rule in rules_for(kind.type, "write"):
        if rule.id.startswith("INPUT"):
            continue
        found = [v for v in violations if v.rule == rule.id]
        checks.append(
            Check(
                rule.id, not found, "; ".join(f"{v.field}: {v.message}" for v in found) or "holds"
            )
        )
    if kind.type == "team":  # the members its served document lists (shared.registry.membership)
        count = len(membership.confirmed(conn, cur.head.entity_id))
        checks.append(Check("L1-TEAM-01", count > 0, f"{count} agent(s)"))
    inclusion, checkpoint = _inclusion_check(conn, cur.entry, principal.tenant)
    checks.append(inclusion)
    return checks, checkpoint


def _statement(
    principal: Principal,
    kind: Kind,
    cur: Current,
    checks: list[Check],
    checkpoint: dict[str, Any],
    at: str,
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{principal.tenant}/{kind.slug}/{cur.head.entity_id}@v{cur.head.version}",
                "digest": {"sha256": cur.entry.digest.hex()},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "tenant": principal.tenant,
            "entity_type": kind.type,
            "entity_id": cur.head.entity_id,
            "version": cur.head.version,
            "log_index": cur.entry.index,
            "checkpoint": checkpoint,
            "certifier": principal.subject,
            "certified_at": at,
            "rule_catalogue_version": CATALOGUE_VERSION,
            "checks": [c.as_dict() for c in checks],
            "result": "pass",
        },
    }


def _parse_body(body: Any) -> int | None:
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"version"}:
        raise ValidationFailed(
            "invalid body",
            [{"rule": "INPUT-04", "field": "", "message": "only 'version' may be sent"}],
        )
    version = body.get("version")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        raise ValidationFailed(
            "invalid body",
            [{"rule": "INPUT-02", "field": "version", "message": "must be a positive integer"}],
        )
    return version


@retry_transient()
def certify(
    principal: Principal, slug: str, raw_id: str, body: Any, request_id: str, *, seal: bool = True
) -> dict[str, Any]:
    """Certify the current version of an entity, or say exactly which checks fail (422)."""
    principal.require("certifier")
    kind = kinds.resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    pinned = _parse_body(body)
    if seal:
        tlog.seal(principal.tenant)
    signer = keys.keyring().active
    with write_transaction(principal) as conn:
        cur = lock_current(conn, kind, entity_id, None)
        if pinned is not None and pinned > cur.head.version:
            raise NotFound(
                f"no such version: {kind.type} {entity_id} has no version {pinned}; "
                f"the current version is {cur.head.version}",
                current_version=cur.head.version,
            )
        if pinned is not None and pinned != cur.head.version:
            raise Conflict(
                f"version {pinned} is stale; the current version is {cur.head.version}",
                current_version=cur.head.version,
            )
        if cur.head.status not in CERTIFIABLE:
            raise Conflict(f"a {cur.head.status} entity cannot be certified")
        checks, checkpoint = run_checks(conn, principal, kind, cur)
        _refuse_own_content(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise _failed(failed, checks)
        at = canonical.now_text()
        statement = _statement(principal, kind, cur, checks, checkpoint or {}, at)
        envelope = dsse.sign_envelope(PAYLOAD_TYPE, canonical.dumps(statement), signer)
        encoded = documents.encode(envelope)
        appended = ledger.append(
            conn,
            entry_type="certificate",
            kind=kind.type,
            entity_id=entity_id,
            version=cur.head.version,
            encoded=encoded,
            prev_digest=cur.entry.digest,
            actor=principal.subject,
        )
        (cert_receipt,) = receipts.record(
            conn, principal.tenant, appended.index, [appended.leaf_hash]
        )
        certification = {
            "certificate_digest": digests.label(encoded.digest),
            "certificate_log_index": appended.index,
            "certified_version": cur.head.version,
            "certified_digest": digests.label(cur.entry.digest),
            "certifier": principal.subject,
            "certified_at": at,
            "key_id": envelope["signatures"][0]["keyid"],
        }
        doc = append_version(
            conn,
            principal,
            kind,
            VersionWrite(
                entity_id=entity_id,
                head=cur.head,
                fields=cur.fields,
                status="certified",
                reason=f"certified version {cur.head.version}",
                action="certify",
                request_id=request_id,
                certification=certification,
                created_at=cur.doc["lifecycle"]["created_at"],
                previous_digest=cur.entry.digest,
            ),
        )
        membership.fill(conn, [doc.body])
    return {
        "certificate": envelope,
        "certificate_log_index": appended.index,
        "certificate_digest": digests.label(encoded.digest),
        "certificate_receipt": cert_receipt.to_json(),
        "statement": statement,
        "entity": doc.body,
        "receipt": doc.receipt,
    }


def _refuse_own_content(checks: list[Check]) -> None:
    """A failed L0-06 is a refusal of the caller (403), whatever else fails."""
    for check in checks:
        if check.id == four_eyes.RULE and not check.passed:
            raise Forbidden(
                f"a certifier cannot certify content they wrote: {check.message}",
                violations=[
                    {
                        "rule": check.id,
                        "field": "",
                        "message": check.message,
                        "remediation": BY_ID[check.id].remediation,
                    }
                ],
            )


def _failed(failed: list[Check], checks: list[Check]) -> ValidationFailed:
    error = ValidationFailed(
        f"{len(failed)} of {len(checks)} checks failed",
        [
            {
                "rule": c.id,
                "field": "",
                "message": c.message,
                "remediation": BY_ID[c.id].remediation,
            }
            for c in failed
        ],
    )
    error.extensions["checks"] = [c.as_dict() for c in checks]
    return error


def certify_batch(principal: Principal, body: Any, request_id: str) -> dict[str, Any]:
    """Certify up to 50 entities, each on its own, in order: each item is certified (and
    committed) or refused by itself, and has its own result; one failure does not undo or
    stop the others.

    Never all or nothing: a certificate, once committed, is in the tenant's log and its item
    says so (201, its index and digest). An item that fails is that item's result: its
    problem, with its status (an unexpected server error too: 500 for that item, logged,
    nothing of it committed); the answer is 200 with every item's result, never a 500 after
    an item was committed.
    """
    principal.require("certifier")
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH or set(body) != {"items"}:
        raise ValidationFailed(
            "invalid batch",
            [{"rule": "INPUT-03", "field": "items", "message": f"send 1 to {MAX_BATCH} items"}],
        )
    tlog.seal(principal.tenant)
    results = [_batch_item(principal, i, item, request_id) for i, item in enumerate(items)]
    passed = sum(1 for r in results if r["status"] == 201)
    return {"certified": passed, "failed": len(results) - passed, "results": results}


def _batch_item(principal: Principal, i: int, item: Any, request_id: str) -> dict[str, Any]:
    """One item of a batch, certified in its own transaction: its result, whatever happens."""
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("kind"), str)
        or not isinstance(item.get("id"), str)
    ):
        return {"index": i, "status": 422, "error": "each item needs kind and id"}
    pinned = {"version": item["version"]} if "version" in item else None
    try:
        result = certify(
            principal, item["kind"], item["id"], pinned, f"{request_id}/{i}", seal=False
        )
    except PlantError as exc:
        return {"index": i, "status": exc.status, "problem": exc.problem()}
    except Exception:  # the item's own transaction rolled back; the items before stand
        log.exception("certification batch %s: item %d failed", request_id, i)
        error = PlantError("an internal error occurred certifying this item")
        return {"index": i, "status": error.status, "problem": error.problem()}
    return {
        "index": i,
        "status": 201,
        "certificate_digest": result["certificate_digest"],
        "certificate_log_index": result["certificate_log_index"],
        "certificate_receipt": result["certificate_receipt"],
        "receipt": result["receipt"],
    }


def certificates(principal: Principal, slug: str, raw_id: str) -> dict[str, Any]:
    principal.require(*READ_ROLES)
    kind = kinds.resolve_kind(slug)
    entity_id = path_params.uuid(raw_id)
    with database().transaction(principal.tenant) as conn:
        versions = ledger.version_entries(conn, entity_id)
        if not versions or versions[0].kind != kind.type:
            raise NotFound(f"no {kind.type} {entity_id}")
        rows = ledger.certificate_entries(conn, entity_id)
    return {
        "id": entity_id,
        "certificates": [
            {
                "log_index": e.index,
                "certified_version": e.version,
                "certificate_digest": digests.label(e.digest),
                "envelope": envelope,
                "created_at": _certified_at(envelope),
            }
            for e, envelope in (
                (e, documents.verified(e.body, e.index, e.leaf_hash, e.digest)) for e in rows
            )
        ],
    }


def _certified_at(envelope: dict[str, Any]) -> str | None:
    return signed_terms(envelope)[1]


def signed_terms(envelope: Any) -> tuple[str | None, str | None]:
    """(certifier, certified_at) as a certificate's signed statement says them: not the row's
    ``actor`` and ``created_at`` columns, which no signature covers and an insider can
    rewrite. (None, None) for an envelope that does not parse (the audit names it)."""
    try:
        statement = canonical.loads(base64.b64decode(envelope["payload"], validate=True))
        predicate = statement["predicate"]
        who, at = predicate.get("certifier"), predicate.get("certified_at")
    except (canonical.CanonicalError, KeyError, TypeError, ValueError, AttributeError):
        return None, None
    return (who if isinstance(who, str) else None), (at if isinstance(at, str) else None)


def catalogue() -> list[dict[str, Any]]:
    """The rule catalogue as data (`plant rules`)."""
    return [
        {
            "id": r.id,
            "kinds": list(r.kinds),
            "stage": r.stage,
            "severity": r.severity,
            "description": r.description,
            "remediation": r.remediation,
        }
        for r in RULES
    ]
