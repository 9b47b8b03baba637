"""What a bundle's checked entries add up to, and what it proves or cannot.

After every entry: an unfiltered bundle must have reached the checkpoint's last index; each
entity's versions must run 1..k, each naming the digest of the one before; each certificate
must name a version in the bundle by its digest and log index. Then the claims: what holds
(printed only when every check does) and what no check here can establish.
"""

from __future__ import annotations

from shared.evidence.contents import Contents, missing
from shared.integrity import digests


def finish(contents: Contents) -> None:
    """The checks that need every entry: completeness, chains, certificates."""
    _complete(contents)
    for entity_id in contents.versions:
        _chain(contents, entity_id)
    _certificates(contents)


def _complete(c: Contents) -> None:
    size = c.checkpoint.size
    if not c.header.unfiltered:
        return
    if c.last < size - 1:
        c.report.fail(
            "log indexes",
            f"{missing(c.last + 1, size - 1)} not in the bundle; the checkpoint holds {size}",
        )
    elif not c.gaps:
        held = f"every index 0..{size - 1} is in the bundle" if size else "the log is empty"
        c.report.add("log indexes", True, held)


def _chain(c: Contents, entity_id: str) -> None:
    chain = c.versions[entity_id]
    newest = max(chain)
    problems = []
    missing = [v for v in range(1, newest) if v not in chain]
    if missing:
        problems.append(f"version(s) {', '.join(map(str, missing[:10]))} not in the bundle")
    if len({v.entity_type for v in chain.values()}) > 1:
        problems.append("its versions name different entity types")
    for number, version in sorted(chain.items()):
        before = chain.get(number - 1)
        if number == 1 and version.previous is not None:
            problems.append("version 1 names a version before it")
        elif before is not None and version.previous != digests.label(before.digest):
            problems.append(f"version {number} does not name version {number - 1}'s digest")
        elif before is not None and version.index < before.index:
            problems.append(f"version {number} is logged before version {number - 1}")
    c.report.add(
        f"chain {entity_id}",
        not problems,
        "; ".join(problems) or f"versions 1..{newest}, each naming the digest of the one before",
    )


def _certificates(c: Contents) -> None:
    for cert in c.certificates:
        target = c.versions.get(cert.entity_id, {}).get(cert.version)
        name = f"certificate of {cert.name}"
        if target is None:
            c.report.fail(name, f"version {cert.version} it certifies is not in the bundle")
        elif target.digest.hex() != cert.subject:
            c.report.fail(name, f"it certifies bytes other than version {cert.version}'s")
        elif target.index != cert.log_index or cert.index < target.index:
            c.report.fail(
                name,
                f"it names log index {cert.log_index}; version {cert.version} is at "
                f"{target.index}, and a certificate follows the version it certifies",
            )
        else:
            c.report.add(name, True, f"signed, over version {cert.version}'s digest")


def describe(c: Contents, signed_by: str, previous_size: int | None) -> None:
    """Fill the report's claims (what holds if every check does) and what is not proven."""
    h, size, report = c.header, c.checkpoint.size, c.report
    entities = len(c.versions)
    report.claims += [
        f"checkpoint: log {h.origin} held {size} entries with root {h.checkpoint.root_b64}, "
        f"signed by {signed_by}",
        f"statement: the same key signed this bundle's tenant ({h.tenant}), origin, filters, "
        f"creation time, checkpoints and the list of its {c.count} entries",
        "every entry's type, entity, version and tenant were recomputed from its bytes, which "
        "are included in the checkpoint",
    ]
    if previous_size is not None:
        report.claims.append(
            f"the log at {size} extends the checkpoint of size {previous_size} that the last "
            "completed audit verified (consistency proof): nothing before it was rewritten"
        )
    else:
        report.not_proven.append(
            "consistency with an earlier checkpoint: the bundle carries none (no completed "
            "audit of a smaller log)"
        )
    chains = "versions 1..k in log order, each naming the digest of the one before"
    certificates = f"{len(c.certificates)} certificate(s), each signed over its version's digest"
    if h.unfiltered:
        report.claims += [
            f"completeness: every entry of the log below {size} (indexes 0..{size - 1}) is "
            "in the bundle once, in order"
            if size
            else "completeness: the log was empty at the checkpoint, and so is the bundle",
            f"{entities} entities, each with {chains}, and each one's newest version below "
            f"{size} is its last here",
            certificates,
        ]
    elif h.entity is not None:
        chain = c.versions.get(h.entity, {})
        newest = max(chain, default=0)
        kind = next((v.entity_type for v in chain.values()), "entity")
        report.claims += [
            f"entity {h.entity} ({kind}): versions 1..{newest} in log order, each naming the "
            "digest of the one before",
            certificates,
        ]
        report.not_proven.append(
            f"that entity {h.entity} has no version newer than {newest} below {size}, or no "
            "other certificate: only the registry's signed statement says the bundle holds "
            "all its entries (the log cannot prove it until current-version proofs exist)"
        )
    else:
        report.claims += [f"{entities} {h.kind} entities, each with {chains}", certificates]
        report.not_proven.append(
            f"that the log holds no other {h.kind} entity, version or certificate below {size}: "
            "only the registry's signed statement says the bundle holds them all (a filtered "
            "selection cannot be proven complete from the log)"
        )
    report.not_proven.append(
        f"that {size} is the log's newest checkpoint, or anything logged after it (compare "
        "the checkpoint with the anchor store or a witness)"
    )
