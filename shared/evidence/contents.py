"""A bundle's entries, each checked against its own bytes, in the order the bundle lists them.

An entry's ``entry_type``, ``entity_type``, ``entity_id`` and ``version`` are labels; the
truth is its bytes, which hash to its leaf hash, which the inclusion proof ties to the signed
checkpoint. So each label is recomputed from the bytes (a version document's ``identity``
and ``versioning``; a certificate's signed in-toto predicate) and must agree, and so must the
tenant and the bundle's filters. Entries must come in log order, each index once; in an
unfiltered bundle every index below the checkpoint size, with no gap.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from shared.evidence.shape import FORMAT, MAP_TYPE, Entry, Header, shown
from shared.evidence.verdict import VerificationReport
from shared.integrity import canonical, digests, dsse, heads_map, merkle, note, receipts
from shared.registry.attestation import PAYLOAD_TYPE, PREDICATE_TYPE
from shared.rules.kinds import AUDIT_RUN

LABELS = ("entry_type", "entity_type", "entity_id", "version")


class Unreadable(ValueError):
    """The entry's bytes are not the document its type says (the message says why)."""


@dataclass(frozen=True)
class Facts:
    """What an entry's bytes say it is."""

    entry_type: str
    entity_type: str
    entity_id: str
    version: int
    tenant: str


@dataclass(frozen=True)
class Version:
    index: int
    entity_type: str
    digest: bytes  # SHA-256 of the stored bytes: what the next version and certificates name
    previous: str | None


@dataclass(frozen=True)
class Certificate:
    name: str
    index: int
    entity_id: str
    version: int
    subject: str  # hex SHA-256 of the certified version's bytes, as signed
    log_index: int  # the certified version's log index, as signed


def _get(value: Any, path: str, kind: type) -> Any:
    """``value`` followed along dotted ``path``; the end must be of exactly ``kind``."""
    for part in path.split("."):
        if type(value) is not dict or part not in value:
            raise Unreadable(f"it has no {path}")
        value = value[part]
    if type(value) is not kind:
        raise Unreadable(f"its {path} is not a {kind.__name__}")
    return value


def version_facts(document: Any) -> tuple[Facts, str | None]:
    """A version document's identity, and the digest of the version before it that it names."""
    previous = _get(document, "versioning", dict).get("previous_digest")
    if previous is not None and type(previous) is not str:
        raise Unreadable("its versioning.previous_digest is not a string")
    facts = Facts(
        "version",
        _get(document, "identity.entity_type", str),
        _get(document, "identity.id", str),
        _get(document, "versioning.version", int),
        _get(document, "identity.tenant", str),
    )
    return facts, previous


def audit_facts(document: Any) -> Facts:
    """An audit run's report (docs/formats.md): its run id and tenant."""
    return Facts(
        "audit",
        AUDIT_RUN,
        _get(document, f"{AUDIT_RUN}.id", str),
        1,
        _get(document, f"{AUDIT_RUN}.tenant", str),
    )


def certificate_facts(envelope: Any, by_id: dict[str, note.Verifier]) -> tuple[Facts, Any]:
    """A certificate's signed predicate (its signature checked with the pinned keys)."""
    try:
        payload = dsse.verify_envelope(envelope, by_id)
        statement = canonical.loads(payload)
    except ValueError as exc:
        raise Unreadable(f"its signature does not verify with the pinned keys: {exc}") from None
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise Unreadable(f"it is signed as {shown(envelope['payloadType'])}, not a certificate")
    if _get(statement, "predicateType", str) != PREDICATE_TYPE:
        raise Unreadable("its statement is not a certification")
    subjects = statement.get("subject")
    if type(subjects) is not list or len(subjects) != 1:
        raise Unreadable("its statement does not name exactly one subject")
    facts = Facts(
        "certificate",
        _get(statement, "predicate.entity_type", str),
        _get(statement, "predicate.entity_id", str),
        _get(statement, "predicate.version", int),
        _get(statement, "predicate.tenant", str),
    )
    subject = _get(subjects[0], "digest.sha256", str)
    return facts, (subject, _get(statement, "predicate.log_index", int))


def missing(first: int, last: int) -> str:
    return f"index {first} is" if first == last else f"indexes {first}..{last} are"


class Contents:
    """Checks entries one at a time and keeps what the chains and certificates need."""

    def __init__(
        self,
        header: Header,
        checkpoint: note.Checkpoint,
        verifiers: list[note.Verifier],
        report: VerificationReport,
    ) -> None:
        self.header = header
        self.checkpoint = checkpoint
        self.by_id = {v.key_id_hex: v for v in verifiers}
        self.report = report
        self.versions: dict[str, dict[int, Version]] = defaultdict(dict)
        self.certificates: list[Certificate] = []
        self.last = -1  # the last index taken, in order
        self.count = 0  # entries seen
        self.gaps = 0  # runs of missing indexes (unfiltered bundles)

    def add(self, entry: Entry) -> None:
        self.count += 1
        if entry.index <= self.last:
            self.report.fail(
                entry.name,
                f"it comes after index {self.last}: entries must appear once each, in log order",
            )
            return
        if self.header.unfiltered and entry.index > self.last + 1:
            self.gaps += 1
            self.report.fail(
                "log indexes", f"{missing(self.last + 1, entry.index - 1)} not in the bundle"
            )
        self.last = entry.index
        if not self._receipt(entry):
            return
        if entry.entry_type == "map_commit":
            self._commit(entry)
            return
        try:
            facts, extra = self._read(entry)
        except Unreadable as exc:
            self.report.fail(entry.name, str(exc))
            return
        problems = self._disagreements(entry, facts)
        if problems:
            self.report.fail(entry.name, "; ".join(problems))
            return
        if facts.entry_type == "audit":
            self.report.add(entry.name, True, f"included at {entry.index}: an audit run's report")
            return
        if facts.entry_type == "certificate":
            self.certificates.append(
                Certificate(entry.name, entry.index, facts.entity_id, facts.version, *extra)
            )
        else:
            chain = self.versions[facts.entity_id]
            if facts.version in chain:
                self.report.fail(entry.name, f"version {facts.version} is already at an index")
                return
            digest = digests.sha256(entry.body)
            chain[facts.version] = Version(entry.index, facts.entity_type, digest, extra)
        self.report.add(entry.name, True, f"included at {entry.index}; its labels match its bytes")

    def _receipt(self, entry: Entry) -> bool:
        """The entry's write receipt, signed by a pinned key for this log, its index and its
        leaf hash (``receipts.verify``); a failure is named ``entry N receipt``."""
        name = f"{entry.name} receipt"
        if self.header.document["format"] != FORMAT:
            return True  # format 2 carries none: verify.py says receipts are not proven
        if entry.receipt is None:
            self.report.fail(name, "receipt_missing: the bundle holds no write receipt for it")
            return False
        try:
            receipts.verify(
                entry.receipt,
                list(self.by_id.values()),
                self.header.origin,
                entry.index,
                leaf_hash=entry.leaf_hash,
            )
        except receipts.ReceiptError as exc:
            self.report.fail(name, f"{exc.reason}: {exc}")
            return False
        return True

    def _commit(self, entry: Entry) -> None:
        """A seal's map commit (issue 24): its exact bytes, at the index it names."""
        try:
            self._included(entry)
            commit = heads_map.decode_commit(entry.body)
        except (Unreadable, heads_map.MalformedCommit) as exc:
            self.report.fail(entry.name, str(exc))
            return
        labels = (entry.entity_type, entry.entity_id, entry.version)
        if commit.log_size != entry.index or labels != (MAP_TYPE, str(uuid.UUID(int=0)), 1):
            self.report.fail(entry.name, "a map commit not at the index it names, or mislabelled")
            return
        self.report.add(entry.name, True, f"map commit included at {entry.index}")

    def _included(self, entry: Entry) -> None:
        if merkle.leaf_hash(entry.body) != entry.leaf_hash:
            raise Unreadable("its bytes do not hash to its leaf hash")
        size = self.checkpoint.size
        if entry.index >= size:
            raise Unreadable(f"its index is not below the checkpoint's size {size}")
        if not merkle.verify_inclusion(
            entry.leaf_hash, entry.index, size, entry.inclusion_proof, self.checkpoint.root
        ):
            raise Unreadable(f"its inclusion proof does not lead to checkpoint {size}")

    def _read(self, entry: Entry) -> tuple[Facts, Any]:
        self._included(entry)
        try:
            document = canonical.loads(entry.body)
            canonical_form = canonical.dumps(document) == entry.body
        except ValueError as exc:
            raise Unreadable(f"its bytes are not canonical JSON: {exc}") from None
        if not canonical_form:
            raise Unreadable("its bytes are not in RFC 8785 canonical form")
        if type(document) is dict and AUDIT_RUN in document:
            return audit_facts(document), None
        if type(document) is dict and "payloadType" in document:
            return certificate_facts(document, self.by_id)
        return version_facts(document)

    def _disagreements(self, entry: Entry, facts: Facts) -> list[str]:
        problems = [
            f"its {label} says {shown(getattr(entry, label))} but its bytes say "
            f"{shown(getattr(facts, label))}"
            for label in LABELS
            if getattr(entry, label) != getattr(facts, label)
        ]
        if facts.tenant != self.header.tenant:
            problems.append(
                f"its bytes belong to tenant {shown(facts.tenant)}, "
                f"not the bundle's {shown(self.header.tenant)}"
            )
        entity, kind = self.header.entity, self.header.kind
        if entity is not None and facts.entity_id != entity:
            problems.append(f"the bundle is of entity {entity}, its bytes of another")
        if kind is not None and facts.entity_type != kind:
            problems.append(
                f"the bundle is of {kind} entities, its bytes of a {shown(facts.entity_type)}"
            )
        return problems
