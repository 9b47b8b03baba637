"""Exports within bounds (issue 20, attack 6): a PDF has a stated maximum size."""

from __future__ import annotations

from reliability_table import record


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_pdf_above_the_stated_maximum_is_a_422_naming_the_limit(
    request, export_client, seeded, make_token, export_settings, monkeypatch
):
    """Five entities, a maximum of four: refused before any rendering, pointing at what holds
    any size; CSV and JSON stay complete; at the maximum the PDF is served."""
    from shared import report_pdf

    rendered = []
    real_render = report_pdf.render
    monkeypatch.setattr(report_pdf, "render", lambda *a: rendered.append(1) or real_render(*a))
    export_settings(PLANT_EXPORT_PDF_MAX_ENTITIES=4)
    headers = _auth(make_token(seeded.tenant, "auditor"))
    response = export_client.get("/export/report?format=pdf", headers=headers)
    assert response.status_code == 422, response.get_data()
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["type"].endswith("limit-exceeded")
    assert problem["limit"] == 4
    assert problem["errors"][0]["field"] == "format"
    for pointer in ("format=csv", "format=json", "/export/bundle", "5 entities"):
        assert pointer in problem["detail"], problem["detail"]
    assert rendered == []
    csv_body = export_client.get("/export/report?format=csv", headers=headers).get_data()
    assert len(csv_body.decode().strip().splitlines()) == 1 + 5
    export_settings(PLANT_EXPORT_PDF_MAX_ENTITIES=5)
    response = export_client.get("/export/report?format=pdf", headers=headers)
    assert response.status_code == 200 and response.get_data().startswith(b"%PDF-")
    record(request.node, "export: PDF above the stated maximum", 1, "422 limit-exceeded naming "
           "format and the limit, pointing at CSV/JSON/bundle; nothing rendered")  # fmt: skip
