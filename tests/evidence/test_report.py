"""Reports match the database, parse as what they claim to be, and stream in flat memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from sqlalchemy import text

from tests.support.seeding import seed_skills


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(client, tenant, make_token, query):
    response = client.get(f"/export/report?{query}", headers=_auth(make_token(tenant, "auditor")))
    return response, response.get_data()


def test_json_report_matches_the_database(export_client, seeded, make_token, superuser):
    response, body = _get(export_client, seeded.tenant, make_token, "format=json")
    assert response.status_code == 200
    report = json.loads(body)
    summary = report["summary"]
    with superuser.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT kind, status, count(*) FROM entity_heads WHERE tenant_id = :t "
                "GROUP BY kind, status"
            ),
            {"t": seeded.tenant},
        ).all()
        size = conn.execute(
            text("SELECT max(size) FROM checkpoints WHERE tenant_id = :t"), {"t": seeded.tenant}
        ).scalar_one()
    assert summary["counts"] == {k: {s: n for kk, s, n in counts if kk == k} for k, _, _ in counts}
    assert summary["total"] == 5
    assert summary["checkpoint"]["size"] == size
    assert response.headers["X-Checkpoint-Size"] == str(size)
    assert summary["latest_audit"]["finding_count"] == 0
    rows = {r["id"]: r for r in report["entities"]}
    assert len(rows) == 5
    for skill in seeded.certified:
        assert rows[skill]["status"] == "certified"
        assert rows[skill]["certifier"] == "carol"
        assert rows[skill]["certificate_digest"].startswith("sha256:")
    assert rows[seeded.skills[2]]["certifier"] is None
    assert rows[seeded.skills[0]]["version"] == 3  # created, amended, certified


def test_csv_report_parses_and_filters(export_client, seeded, make_token):
    response, body = _get(export_client, seeded.tenant, make_token, "format=csv&kind=skills")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 4
    assert {r["status"] for r in rows} == {"certified", "draft"}
    certified = [r for r in rows if r["status"] == "certified"]
    assert all(r["certifier"] == "carol" for r in certified)


def test_csv_cells_cannot_become_spreadsheet_formulas(export_client, tenant, make_token):
    import uuid

    from shared.registry import writes
    from shared.security.principal import Principal

    writes.create(
        Principal("a", tenant, frozenset({"author"})),
        "industries",
        {"name": '=HYPERLINK("http://x")', "description": "d"},
        str(uuid.uuid4()),
    )
    _, body = _get(export_client, tenant, make_token, "format=csv")
    (row,) = csv.DictReader(io.StringIO(body.decode()))
    assert row["name"] == '\'=HYPERLINK("http://x")'


def test_pdf_report_is_readable_and_renders(export_client, seeded, make_token):
    from pypdf import PdfReader

    response, body = _get(export_client, seeded.tenant, make_token, "format=pdf")
    assert response.mimetype == "application/pdf"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    reader = PdfReader(io.BytesIO(body))
    first = reader.pages[0].extract_text()
    assert seeded.tenant in first
    assert "Entities in scope 5" in first
    assert "page 1 of" in first
    everything = "".join(p.extract_text() for p in reader.pages)
    assert "Entities by status" in everything
    assert "No findings." not in everything  # no page of its own for an empty table
    assert "None: the latest audit found nothing." in everything
    import pypdfium2

    page = pypdfium2.PdfDocument(body)[0]
    image = page.render(scale=1).to_pil().convert("L")
    width, height = image.size
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1  # A4 at 72 dpi
    dark = sum(image.histogram()[:128])
    assert dark > 2000  # title, lines and bars are drawn, not a blank page


def test_pdf_report_lists_every_finding_of_the_latest_audit():
    """Several findings, some long enough to wrap (the PDF once failed on the second one)."""
    from pypdf import PdfReader

    from shared.evidence.pdf import render

    findings = [
        {
            "kind": "altered",
            "entity_id": f"e{i}",
            "field": "description",
            "detail": f"description: finding {i} " + "x" * 150,
        }
        for i in range(3)
    ]
    head = {
        "tenant": "t",
        "generated_at": "2026-01-01T00:00:00.000Z",
        "generated_by": "auditor",
        "checkpoint": None,
        "total": 0,
        "counts": {},
        "filters": {"kind": None, "status": None},
        "latest_audit": {
            "id": "run-1",
            "checkpoint_size": 0,
            "finding_count": 3,
            "finished_at": "2026-01-01T00:00:00.000Z",
            "mode": "full",
            "findings": findings,
        },
    }
    reader = PdfReader(io.BytesIO(render(head, [], {}, {})))
    everything = "".join(p.extract_text() for p in reader.pages)
    for i in range(3):
        # One clean message per finding: the field is named once, in its own column.
        assert f"e{i} - - description\nfinding {i}" in everything
    assert "description: finding" not in everything


BAD_QUERIES = [
    ("/export/report?format=xml", "format", "must be one of"),
    ("/export/report?kind=robot", "kind", "must be one of"),
    ("/export/report?status=lost", "status", "must be one of"),
    ("/export/report?colour=red", "colour", "unknown query parameter"),
    ("/export/bundle?kind=robot", "kind", "must be one of"),
    ("/export/bundle?entity=not-a-uuid", "entity", "must be a UUID"),
    ("/export/bundle?format=csv", "format", "unknown query parameter"),
]


@pytest.mark.parametrize(("path", "field", "words"), BAD_QUERIES, ids=[q[0] for q in BAD_QUERIES])
def test_a_bad_export_query_is_a_422_naming_the_parameter(
    export_client, seeded, make_token, superuser, path, field, words
):
    """As every other route's bad query parameter: 422 invalid-query naming it, before any
    work (the bundle seals nothing)."""

    def sealed() -> int:
        with superuser.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM checkpoints WHERE tenant_id = :t"), {"t": seeded.tenant}
            ).scalar_one()

    before = sealed()
    response = export_client.get(path, headers=_auth(make_token(seeded.tenant, "auditor")))
    assert response.status_code == 422, response.get_data()
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("/invalid-query")
    ((error,),) = [response.json["errors"]]
    assert error["field"] == field and words in error["message"], error
    assert sealed() == before


def test_a_report_for_a_reader_is_forbidden(export_client, tenant, make_token):
    response = export_client.get("/export/report", headers=_auth(make_token(tenant, "reader")))
    assert response.status_code == 403


def test_reports_never_cross_tenants(export_client, seeded, make_token):
    _, body = _get(export_client, seeded.tenant + "-b", make_token, "format=json")
    report = json.loads(body)
    assert report["entities"] == [] and report["summary"]["total"] == 0


def _seed_many(superuser, tenant: str, count: int) -> None:
    seed_skills(superuser, tenant, 0, count)


def _peak_bytes(export_client, tenant, make_token, fmt) -> tuple[int, int]:
    response = export_client.get(
        f"/export/report?format={fmt}", headers=_auth(make_token(tenant, "auditor"))
    )
    tracemalloc.start()
    size = 0
    for chunk in response.response:
        size += len(chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return size, peak


def test_streaming_memory_does_not_grow_with_the_tenant(export_client, superuser, make_token):
    import uuid

    small, large = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    _seed_many(superuser, small, 500)
    _seed_many(superuser, large, 5_000)
    for fmt in ("csv", "json"):
        small_size, small_peak = _peak_bytes(export_client, small, make_token, fmt)
        large_size, large_peak = _peak_bytes(export_client, large, make_token, fmt)
        assert large_size > 9 * small_size
        # Ten times the rows, yet the peak stays within a constant of the small export's.
        assert large_peak < small_peak + 4 * 1024 * 1024, (fmt, small_peak, large_peak)


@pytest.mark.slow
def test_exporting_100k_entities_stays_under_200_mb(superuser, database_url, tmp_path):
    """The export runs in its own process (`plant export`), whose peak RSS the kernel reports."""
    import os
    import subprocess
    import sys
    import uuid

    tenant = f"t-{uuid.uuid4().hex[:10]}"
    for start in range(0, 100_000, 10_000):
        seed_skills(superuser, tenant, start, 10_000)
    # The child reports its own high-water mark (VmHWM is reset at exec, unlike the
    # ru_maxrss a forked child inherits from this large test process).
    probe = (
        "import sys; from shared import cli; code = cli.main(sys.argv[1:]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(int(hwm.split()[1]) // 1024, file=sys.stderr); sys.exit(code)"
    )
    for fmt in ("csv", "json"):
        out = tmp_path / f"report.{fmt}"
        done = subprocess.run(
            [sys.executable, "-c", probe, "export", "report", "--tenant", tenant,
             "--format", fmt, "--out", str(out)],
            env=dict(os.environ), capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert out.stat().st_size > 100_000 * 100
        peak_mb = int(done.stderr.strip().splitlines()[-1])
        assert peak_mb < 200, (fmt, peak_mb)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_first_batch_the_database_cannot_serve_is_a_503_problem(
    export_client, seeded, make_token, monkeypatch, fmt
):
    """Nothing is sent before the first batch is read: a statement timeout there is a clean
    503 problem with Retry-After, not a stream cut short behind a 200."""
    from shared.errors import ServiceUnavailable
    from shared.evidence import reports

    def timed_out(conn, q):
        raise ServiceUnavailable("the database is unavailable; retry shortly")
        yield  # a generator, like the real one

    monkeypatch.setattr(reports, "rows", timed_out)
    response, body = _get(export_client, seeded.tenant, make_token, f"format={fmt}")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "Retry-After" in response.headers
    assert json.loads(body)["status"] == 503
