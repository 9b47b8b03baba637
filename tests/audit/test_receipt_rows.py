"""The receipts pass compiled (``native/receipt_rows.c``) against its pure twin
(``native_rows.receipt_rows``): on a real log whose receipts and entries an insider has
deleted, corrupted, copied elsewhere or rewritten (hypothesis draws the attacks, the range
audited and the indices already named), ``receipts.checked`` names the same entries, for the
same reasons, in the same order both ways, and as the rule says: the first receipt read for
an index that verifies decides, else the first that does not, else none is there."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from shared.audit import receipts as audit_receipts
from shared.audit.state import AuditState
from shared.integrity import map_memory, native_rows, receipts
from shared.registry import batches
from shared.storage import receipt_rows
from shared.tlog import keys
from tests.audit.conftest import History

NATIVE = map_memory.NATIVE
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native/ is not built: `make` builds it")

_ATTACKS = (
    # a receipt row gone: its entries have none
    "DELETE FROM log_receipts WHERE tenant_id = :t AND first_idx = "
    "(SELECT max(first_idx) FROM log_receipts WHERE tenant_id = :t AND first_idx <= :i)",
    # a receipt's bytes changed: it no longer verifies
    "UPDATE log_receipts SET receipt = overlay(receipt PLACING '\\x00'::bytea FROM :n) "
    "WHERE tenant_id = :t AND first_idx = "
    "(SELECT max(first_idx) FROM log_receipts WHERE tenant_id = :t AND first_idx <= :i)",
    # a batch's stored leaves changed: its root no longer matches
    "UPDATE log_receipts SET leaves = overlay(leaves PLACING '\\x01'::bytea FROM :n) "
    "WHERE tenant_id = :t AND leaves IS NOT NULL AND first_idx <= :i",
    # an extra receipt: another index's copied over one with none (or overlapping a batch)
    "INSERT INTO log_receipts (tenant_id, first_idx, count, receipt, leaves) "
    "SELECT tenant_id, :i, count, receipt, leaves FROM log_receipts WHERE tenant_id = :t "
    "AND first_idx <> :i ORDER BY abs(first_idx - :n) LIMIT 1 ON CONFLICT DO NOTHING",
    # an entry's leaf rewritten: its receipt vouches for other bytes
    "UPDATE log_entries SET leaf_hash = :leaf WHERE tenant_id = :t AND idx = :i",
    # an entry gone: missing, if past the sealed checkpoints (here: any)
    "DELETE FROM log_entries WHERE tenant_id = :t AND idx = :i",
)


@pytest.fixture
def mixed(history: History, superuser: Engine) -> tuple[History, int]:
    """The history plus a bulk batch of seven and one more single write: entry receipts and
    a batch receipt side by side; (history, log size)."""
    bodies = [{"name": f"bulk {i}", "description": "d", "category": "technical"} for i in range(7)]
    batches.create_batch(history.author, "skills", bodies, "r")
    history.amend(history.skills[2], 1, "writes safe Rust")
    with superuser.connect() as conn:
        size = conn.execute(
            text("SELECT max(idx) + 1 FROM log_entries WHERE tenant_id = :t"), {"t": history.tenant}
        ).scalar_one()
    return history, int(size)


def _findings(state: AuditState) -> list[tuple[Any, ...]]:
    return [
        (f.kind, f.detail, f.log_index, f.entity_id, f.version, f.entity_type, f.extra)
        for f in state.findings
    ]


def _checked(conn: Connection, tenant: str, start: int, end: int, named: set[int]) -> AuditState:
    state = AuditState(conn, tenant)
    state.reported = set(named)
    audit_receipts.checked(state, start, end)
    return state


def _expected(conn: Connection, tenant: str, start: int, end: int, named: set[int]) -> list[Any]:
    """The rule, written out: each entry of the range in order, not yet named; the first
    receipt row covering it that verifies decides, else the first that does not; then the
    indices with no entry."""
    verifiers, origin = list(keys.keyring().verifiers), keys.origin(tenant)
    good: dict[int, bytes] = {}
    bad: dict[int, str] = {}
    for row in receipt_rows.covering(conn, start, end):
        try:
            leaves = audit_receipts.vouched(row, verifiers, origin)
        except receipts.ReceiptError as exc:
            for index in range(row.first, row.end):
                bad.setdefault(index, exc.reason)
            continue
        for at, leaf in enumerate(leaves):
            good.setdefault(row.first + at, leaf)
    rows = conn.execute(
        text(
            "SELECT idx, leaf_hash FROM log_entries WHERE tenant_id = :t AND idx >= :a "
            "AND idx < :b ORDER BY idx"
        ),
        {"t": tenant, "a": start, "b": end},
    ).all()
    out: list[Any] = []
    for index, leaf in rows:
        if index in named or good.get(index) == bytes(leaf):
            continue
        if index in good:
            out.append(("receipt_invalid", index, receipts.LeafMismatch.reason))
        elif index in bad:
            out.append(("receipt_invalid", index, bad[index]))
        else:
            out.append(("receipt_missing", index))
    present = {int(r[0]) for r in rows}
    return out + [("missing", i) for i in range(start, end) if i not in present]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_compiled_and_pure_name_the_same_entries_in_order(mixed, superuser: Engine, data):
    history, size = mixed
    attacks = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(range(len(_ATTACKS))),
                st.integers(0, size + 1),
                st.integers(1, 90),
            ),
            max_size=5,
        )
    )
    start = data.draw(st.integers(0, size))
    end = data.draw(st.integers(start, size + 1))
    named = set(data.draw(st.lists(st.integers(0, size), max_size=3)))
    with superuser.connect() as link:  # the attacks and both passes in one transaction
        conn = link.execution_options(isolation_level="READ COMMITTED")
        conn.begin()
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SELECT set_config('plant.tenant', :t, true)"), {"t": history.tenant})
        for attack, index, n in attacks:
            leaf = hashlib.sha256(b"forged %d" % index).digest()
            conn.execute(
                text(_ATTACKS[attack]), {"t": history.tenant, "i": index, "n": n, "leaf": leaf}
            )
        calls: Counter[str] = Counter()
        compiled_rows = NATIVE.receipt_rows

        def counted(*args: Any) -> Any:
            calls["receipt_rows"] += 1
            return compiled_rows(*args)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(map_memory, "NATIVE", _With(receipt_rows=counted))
            compiled = _checked(conn, history.tenant, start, end, named)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(map_memory, "NATIVE", None)
            pure = _checked(conn, history.tenant, start, end, named)
        expected = _expected(conn, history.tenant, start, end, named)
        conn.rollback()
    assert calls["receipt_rows"] or not compiled.rows_read  # the C compared what was read
    assert _findings(compiled) == _findings(pure)
    assert compiled.rows_read == pure.rows_read
    assert [
        (f.kind, f.log_index, *([f.extra["reason"]] if f.extra else [])) for f in pure.findings
    ] == expected


class _With:
    """The extension with one of its functions replaced (the others its own)."""

    def __init__(self, **replaced: Any) -> None:
        self.replaced = replaced

    def __getattr__(self, name: str) -> Any:
        return self.replaced.get(name) or getattr(NATIVE, name)


_LEAF = st.binary(min_size=32, max_size=32)


@st.composite
def _rows(draw: Any) -> tuple[Any, ...]:
    """A batch of the pass's rows over a span, some leaves vouched, some not, some named."""
    span = draw(st.integers(1, 40))
    start = draw(st.integers(0, 2**40))
    leaves = [draw(_LEAF) for _ in range(span)]
    have = bytearray(draw(st.lists(st.sampled_from([0, 1, 7]), min_size=span, max_size=span)))
    picked = sorted(draw(st.sets(st.integers(0, span - 1))))
    rows = []
    for at in picked:
        leaf = draw(st.sampled_from([leaves[at], draw(_LEAF), leaves[at][:31]]))
        rows.append((start + at, leaf, b"e", 1, "skill"))
    reported = {start + at for at in draw(st.sets(st.integers(0, span - 1), max_size=4))}
    return rows, start, bytearray(b"".join(leaves)), have, reported


@settings(max_examples=300, deadline=None)
@given(_rows())
def test_the_compiled_comparison_is_the_twins(case):
    rows, start, vouched, have, reported = case
    compiled_seen, pure_seen = bytearray(len(have)), bytearray(len(have))
    compiled = NATIVE.receipt_rows(rows, start, vouched, have, compiled_seen, reported)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(map_memory, "NATIVE", None)
        pure = native_rows.receipt_rows(rows, start, vouched, have, pure_seen, reported)
    assert compiled == pure and compiled_seen == pure_seen
    assert compiled_seen == bytearray(
        int(start + i in {r[0] for r in rows}) for i in range(len(have))
    )


def test_rows_of_another_shape_are_left_to_the_twin():
    """An index outside the buffers, a leaf or index of another type, buffers of another
    type or size: the C answers None before any effect, and the twin decides."""
    leaf = bytes(32)
    cases = [
        ([(5, leaf)], 0, bytearray(32), bytearray(1), bytearray(1), set()),  # past the span
        ([(0, bytearray(leaf))], 0, bytearray(32), bytearray(1), bytearray(1), set()),
        ([(True, leaf)], 0, bytearray(32), bytearray(1), bytearray(1), set()),
        ([(0, leaf)], 0, bytes(32), bytearray(1), bytearray(1), set()),
        ([(0, leaf)], 0, bytearray(31), bytearray(1), bytearray(1), set()),
        ([(0, leaf)], 0, bytearray(32), bytearray(1), bytearray(1), [1]),  # not a set
    ]
    for rows, start, vouched, have, seen, reported in cases:
        assert NATIVE.receipt_rows(rows, start, vouched, have, seen, reported) is None
        assert seen == bytearray(1)
