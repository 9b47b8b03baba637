"""Offline verification of an evidence bundle: no database, no network, only the bytes.

Checks, each reported as its own item: the checkpoint's signature (with keys the auditor
supplies, or, with a warning, the bundle's own), the previous checkpoint and the consistency
proof between them, each entry's leaf hash and inclusion proof, each version's canonical form,
identity and link to the version before it, and each certificate's DSSE signature and subject.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared import bundle
from shared.integrity import canonical, digests, dsse, merkle, note


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    message: str


@dataclass
class VerificationReport:
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(i.ok for i in self.items)

    @property
    def failures(self) -> list[Item]:
        return [i for i in self.items if not i.ok]

    def add(self, name: str, ok: bool, message: str) -> bool:
        self.items.append(Item(name, ok, message))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": len(self.items),
            "failed": len(self.failures),
            "warnings": self.warnings,
            "failures": [{"item": i.name, "message": i.message} for i in self.failures],
        }


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(value, validate=True)


def _hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise ValueError("not a list of hashes")
    return [_b64(v) for v in values]


def _open_checkpoint(
    report: VerificationReport, name: str, data: Any, verifiers: list[note.Verifier], origin: str
) -> note.Checkpoint | None:
    try:
        text, _ = note.open_note(data["note"], verifiers)
        parsed = note.parse_checkpoint(text)
    except (note.NoteError, KeyError, TypeError) as exc:
        report.add(name, False, f"the signature does not verify with the trusted keys: {exc}")
        return None
    problems = []
    if parsed.origin != origin:
        problems.append(f"it names log {parsed.origin!r}, not {origin!r}")
    if parsed.size != data.get("size") or bundle.b64(parsed.root) != data.get("root"):
        problems.append("its signed size or root differ from the bundle's copy")
    report.add(name, not problems, "; ".join(problems) or f"signed, size {parsed.size}")
    return parsed if not problems else None


def verify(
    data: Any,
    trusted_vkeys: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> VerificationReport:
    """Verify a parsed bundle; never raises on bad content (it becomes a failed item)."""
    report = VerificationReport()
    if not isinstance(data, dict) or data.get("format") != bundle.FORMAT:
        report.add("format", False, f"not a {bundle.FORMAT} bundle")
        return report
    trusted = list(trusted_vkeys)
    try:
        if trusted:
            verifiers = [note.Verifier.from_vkey(v) for v in trusted]
        else:
            verifiers = [note.Verifier.from_vkey(v) for v in data.get("public_keys", [])]
            report.warnings.append(
                "trusting the public keys inside the bundle: pass --key with the registry's "
                "published key to rule out a forged bundle"
            )
    except note.NoteError as exc:
        report.add("keys", False, f"a public key is malformed: {exc}")
        return report
    origin = data.get("origin", "")
    latest = _open_checkpoint(report, "checkpoint", data.get("checkpoint"), verifiers, origin)
    previous = data.get("previous_checkpoint")
    if previous is not None and latest is not None:
        older = _open_checkpoint(report, "previous checkpoint", previous, verifiers, origin)
        if older is not None:
            try:
                proof = _hashes(previous.get("consistency_proof"))
                ok = merkle.verify_consistency(
                    older.size, latest.size, older.root, latest.root, proof
                )
            except (ValueError, binascii.Error):
                ok = False
            report.add(
                "consistency proof",
                ok,
                f"checkpoint {older.size} is a prefix of {latest.size}"
                if ok
                else f"checkpoint {latest.size} does not extend {older.size}",
            )
    entries = data.get("entries")
    if not isinstance(entries, list):
        report.add("entries", False, "the bundle has no entry list")
        return report
    versions: dict[str, dict[int, tuple[bytes, str]]] = defaultdict(dict)
    certificates: list[tuple[str, dict[str, Any], bytes]] = []
    for n, entry in enumerate(entries):
        _entry(report, entry, latest, versions, certificates, n)
        if progress:
            progress(n + 1, len(entries))
    _chains(report, versions)
    _certificates(report, certificates, versions, verifiers)
    return report


def _entry(
    report: VerificationReport,
    entry: Any,
    latest: note.Checkpoint | None,
    versions: dict[str, dict[int, tuple[bytes, str]]],
    certificates: list[tuple[str, dict[str, Any], bytes]],
    position: int,
) -> None:
    try:
        index = entry["index"]
        name = f"entry {index} ({entry['entity_type']} {entry['entity_id']} v{entry['version']})"
        body = _b64(entry["body"])
        leaf = _b64(entry["leaf_hash"])
        proof = _hashes(entry["inclusion_proof"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.add(f"entry #{position}", False, f"malformed entry: {exc}")
        return
    if merkle.leaf_hash(body) != leaf:
        report.add(name, False, "its bytes do not hash to its leaf hash")
        return
    if latest is None:
        report.add(name, False, "no trusted checkpoint to prove it against")
        return
    if not merkle.verify_inclusion(leaf, index, latest.size, proof, latest.root):
        report.add(name, False, f"its inclusion proof does not lead to checkpoint {latest.size}")
        return
    try:
        document = canonical.loads(body)
        if canonical.dumps(document) != body:
            raise canonical.CanonicalError("not in RFC 8785 canonical form")
    except canonical.CanonicalError as exc:
        report.add(name, False, f"its bytes are not canonical JSON: {exc}")
        return
    if entry["entry_type"] == "certificate":
        certificates.append((name, document, body))
        report.add(name, True, f"included at {index}")
        return
    try:
        identity, record = document["identity"], document["versioning"]
        same = identity["id"] == entry["entity_id"] and record["version"] == entry["version"]
        same = same and identity["entity_type"] == entry["entity_type"]
    except (KeyError, TypeError):
        same = False
    if not same:
        report.add(name, False, "its bytes describe another entity or version")
        return
    versions[entry["entity_id"]][entry["version"]] = (body, record.get("previous_digest"))
    report.add(name, True, f"included at {index}")


def _chains(report: VerificationReport, versions: dict[str, dict[int, tuple[bytes, str]]]) -> None:
    for entity_id, chain in versions.items():
        problems = []
        for version in sorted(chain):
            _, previous = chain[version]
            if version == 1:
                if previous is not None:
                    problems.append("version 1 claims a predecessor")
                continue
            before = chain.get(version - 1)
            if before is None:
                problems.append(f"version {version - 1} is not in the bundle")
            elif previous != digests.label(digests.sha256(before[0])):
                problems.append(f"version {version} does not link to version {version - 1}")
        report.add(
            f"chain {entity_id}",
            not problems,
            "; ".join(problems) or f"{len(chain)} version(s) linked",
        )


def _certificates(
    report: VerificationReport,
    certificates: list[tuple[str, dict[str, Any], bytes]],
    versions: dict[str, dict[int, tuple[bytes, str]]],
    verifiers: list[note.Verifier],
) -> None:
    by_id = {v.key_id_hex: v for v in verifiers}
    for name, envelope, _ in certificates:
        try:
            statement = canonical.loads(dsse.verify_envelope(envelope, by_id))
            predicate = statement["predicate"]
            subject = statement["subject"][0]["digest"]["sha256"]
            body = versions.get(predicate["entity_id"], {}).get(predicate["version"])
        except (
            dsse.EnvelopeError,
            canonical.CanonicalError,
            KeyError,
            TypeError,
            IndexError,
        ) as exc:
            report.add(f"certificate of {name}", False, f"its signature does not verify: {exc}")
            continue
        if body is None:
            report.add(
                f"certificate of {name}", False, "the certified version is not in the bundle"
            )
        elif digests.sha256(body[0]).hex() != subject:
            report.add(
                f"certificate of {name}", False, "it certifies bytes other than the version's"
            )
        else:
            report.add(f"certificate of {name}", True, "signed, and certifies the version's digest")
