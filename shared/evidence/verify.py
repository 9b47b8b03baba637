"""Offline verification of an evidence bundle: no database, no network, only its bytes and the
keys the auditor pins.

In order, each a named item of the report: the pinned keys (none pinned: nothing is verified);
the file's shape (bundle_shape); the checkpoint's signature, origin and copy; the statement
(bundle_statement) signed over the header and the entry list, compared field by field with the
bundle; the previous checkpoint and the consistency proof to it; every entry against its own
bytes (bundle_contents); then completeness, chains and certificates, the entry list against
the statement, and what the bundle proves or cannot (bundle_claims).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shared.evidence import claims as bundle_claims
from shared.evidence import current
from shared.evidence import shape as bundle_shape
from shared.evidence import statement as bundle_statement
from shared.evidence.contents import Contents
from shared.evidence.shape import CheckpointCopy, Header, MalformedBundle, shown
from shared.evidence.verdict import VerificationReport
from shared.integrity import canonical, cosignature, dsse, merkle, note

NO_KEY = (
    "no key is pinned: pass --key VKEY or --key-file FILE with the registry's published "
    "keys (GET /log/keys, or plant keys list); a bundle's own keys prove nothing, since "
    "whoever forged it would have signed it with them"
)
HEADER_FIELDS: tuple[str, ...] = (
    "format",
    "tenant",
    "origin",
    "created_at",
    "filters",
    "checkpoint",
)
HEADER_FIELDS += ("previous_checkpoint",)


def pinned(vkeys: Iterable[str], report: VerificationReport) -> list[note.Verifier]:
    """The auditor's keys, or none (with the failure named) if none or a malformed one."""
    verifiers = []
    for vkey in vkeys:
        try:
            verifiers.append(note.Verifier.from_vkey(vkey))
        except note.NoteError as exc:
            report.fail("pinned key", f"{shown(vkey)} is not a vkey: {exc}")
            return []
    if not verifiers:
        report.fail("pinned key", NO_KEY)
    return verifiers


def verify(
    raw: bytes,
    trusted_vkeys: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
    witnesses: Iterable[str] = (),
    quorum: int = 0,
) -> VerificationReport:
    """Verify a bundle file's bytes; never raises on bad content (it becomes a failed item).
    With ``quorum`` K, K of the ``witnesses`` (vkeys) must have cosigned its checkpoint."""
    report = VerificationReport()
    verifiers = pinned(trusted_vkeys, report)
    if not verifiers:
        return report
    try:
        header = bundle_shape.header(bundle_shape.load(raw))
        if quorum or witnesses:
            _quorum(report, header.checkpoint.note, list(witnesses), quorum)
        _check(report, header, verifiers, progress)
    except MalformedBundle as exc:
        report.fail(exc.where, exc.problem)
    return report


def _check(
    report: VerificationReport,
    header: Header,
    verifiers: list[note.Verifier],
    progress: Callable[[int, int], None] | None,
) -> None:
    if not header.origin.endswith("/" + header.tenant):
        report.fail(
            "tenant",
            f"the bundle's origin {shown(header.origin)} is not the log of its tenant "
            f"{shown(header.tenant)}",
        )
        return
    latest, signed_by = _open(report, "checkpoint", header.checkpoint, header, verifiers)
    if latest is None:
        return
    statement = _statement(report, header, verifiers)
    _previous(report, header, latest, verifiers)
    contents = Contents(header, latest, verifiers, report)
    coverage = bundle_statement.Coverage()
    entries = header.document["entries"]
    for position, value in enumerate(entries):
        entry = bundle_shape.entry(value, position, header.document["format"])
        coverage.add(entry.index, entry.leaf_hash)
        contents.add(entry)
        if progress:
            progress(position + 1, len(entries))
    bundle_claims.finish(contents)
    _current_proofs(report, header, latest, verifiers)
    if statement is not None:
        _coverage(report, statement.get("entries"), coverage)
    previous = header.previous.size if header.previous else None
    bundle_claims.describe(contents, signed_by, previous)


def _quorum(report: VerificationReport, text: str, vkeys: list[str], quorum: int) -> None:
    """K valid cosignature/v1 lines by distinct named witnesses; each failure names the
    witness and why (C2SP tlog-cosignature; lines of other keys are ignored)."""
    try:
        keys = [cosignature.WitnessKey.from_vkey(v) for v in vkeys]
        valid = cosignature.require_quorum(text, keys, quorum)
    except cosignature.CosignatureError as exc:
        report.fail("witness quorum", str(exc))
        return
    names = ", ".join(f"{name} (time {at})" for name, at in sorted(valid.items()))
    report.add("witness quorum", True, f"{len(valid)} of {quorum} required: {names}")


def _current_proofs(
    report: VerificationReport,
    header: Header,
    latest: note.Checkpoint,
    verifiers: list[note.Verifier],
) -> None:
    """Each current proof the bundle carries (format 3) holds against the bundle's own
    checkpoint and is of its tenant (``shared.evidence.current``)."""
    proofs = header.document.get("current_proofs")
    if header.document["format"] != bundle_shape.FORMAT:
        report.not_proven.append(
            "write receipts and current versions: a format 2 bundle carries neither"
        )
        return
    if proofs is None:
        report.not_proven.append(
            "current versions: the bundle selects too many entities to carry their proofs"
        )
        return
    for position, proof in enumerate(proofs):
        name = f"current_proofs[{position}]"
        try:
            found = current.check(proof, verifiers)
        except current.StepFailed as exc:
            report.fail(name, f"{exc.step}: {exc.message}")
            continue
        if found.tenant != header.tenant or proof["checkpoint"] != header.checkpoint.note:
            report.fail(name, "it is not a proof against this bundle's tenant and checkpoint")
            continue
        head = found.head
        report.add(
            name,
            True,
            f"{found.entity_id}: "
            + ("absent" if head is None else f"version {head.version} {head.status}")
            + f" at checkpoint {latest.size}",
        )
    if proofs:
        report.claims.append(
            f"current versions: {len(proofs)} entities' heads at the checkpoint, each proven "
            "by the map commit it ends with"
        )


def _open(
    report: VerificationReport,
    name: str,
    copy: CheckpointCopy,
    header: Header,
    verifiers: list[note.Verifier],
) -> tuple[note.Checkpoint | None, str]:
    """A checkpoint note opened with the pinned keys, and checked against the bundle's copy."""
    try:
        text, signers = note.open_note(copy.note, verifiers)
        parsed = note.parse_checkpoint(text)
    except note.NoteError as exc:
        report.fail(name, f"its signature does not verify with the pinned keys: {exc}")
        return None, ""
    problems = []
    if parsed.origin != header.origin:
        problems.append(f"it names log {shown(parsed.origin)}, not {shown(header.origin)}")
    if parsed.size != copy.size or parsed.root != copy.root:
        problems.append("its signed size or root differ from the bundle's copy")
    if problems:
        report.fail(name, "; ".join(problems))
        return None, ""
    report.add(name, True, f"signed by {', '.join(signers)}, size {parsed.size}")
    return parsed, f"{', '.join(signers)} (a key you pinned)"


def _statement(
    report: VerificationReport, header: Header, verifiers: list[note.Verifier]
) -> dict[str, Any] | None:
    """The signed statement, if a pinned key signed it and it says what the header says."""
    envelope = header.statement
    by_id = {v.key_id_hex: v for v in verifiers}
    try:
        signed = canonical.loads(dsse.verify_envelope(envelope, by_id))
    except ValueError as exc:
        report.fail("statement", f"it does not verify with the pinned keys: {exc}")
        return None
    if envelope["payloadType"] != bundle_statement.PAYLOAD_TYPE or type(signed) is not dict:
        report.fail("statement", "the signed payload is not an evidence bundle statement")
        return None
    expected = bundle_statement.payload(header.document, {})
    problems = [
        f"the bundle's {name} {shown(expected[name])} is not the signed {shown(signed.get(name))}"
        for name in HEADER_FIELDS
        if signed.get(name) != expected[name]
    ]
    if set(signed) != set(expected):
        problems.append("the signed statement's fields are not a bundle statement's")
    if problems:
        report.fail("statement", "; ".join(problems))
        return None
    report.add("statement", True, "signed, and says what the bundle's header says")
    return signed


def _previous(
    report: VerificationReport,
    header: Header,
    latest: note.Checkpoint,
    verifiers: list[note.Verifier],
) -> None:
    if header.previous is None:
        return
    name = "previous checkpoint"
    older, _ = _open(report, name, header.previous, header, verifiers)
    if older is None:
        return
    if not 0 < older.size < latest.size:
        report.fail(name, f"its size {older.size} is not between 0 and {latest.size}")
        return
    holds = merkle.verify_consistency(
        older.size, latest.size, older.root, latest.root, header.previous.consistency_proof
    )
    report.add(
        "consistency proof",
        holds,
        f"checkpoint {older.size} is a prefix of {latest.size}"
        if holds
        else f"checkpoint {latest.size} does not extend {older.size}",
    )


def _coverage(report: VerificationReport, signed: Any, coverage: bundle_statement.Coverage) -> None:
    held = coverage.summary()
    if signed == held:
        report.add("coverage", True, f"the bundle holds exactly the {held['count']} entries signed")
        return
    count = signed.get("count") if type(signed) is dict else None
    report.fail(
        "coverage",
        f"the signed statement lists {shown(count)} entries, the bundle holds {held['count']} "
        "that do not hash to the signed list: entries were dropped, added, moved or changed",
    )
