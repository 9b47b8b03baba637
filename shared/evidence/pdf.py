"""The compliance report as a PDF for people: a title page, charts of entities by status and
findings by kind, a per-entity table, the findings, and page numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fpdf import FPDF

STATUS_COLOURS = {
    "draft": (160, 160, 160),
    "pending_certification": (230, 160, 40),
    "certified": (40, 150, 80),
    "suspended": (200, 60, 60),
    "deprecated": (90, 90, 90),
}


def _latin(text: Any) -> str:
    """The core PDF fonts are Latin-1: anything else is shown as '?' rather than failing."""
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


class _Report(FPDF):
    def __init__(self, tenant: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.tenant = tenant
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(f"Plant registry compliance report - {tenant}")
        self.set_creator("Plant registry")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(100, 100, 100)
        self.cell(0, 8, _latin(f"{self.tenant} - page {self.page_no()} of {{nb}}"), align="C")


def _bar_chart(pdf: FPDF, title: str, data: dict[str, int], colours: dict[str, Any]) -> None:
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, _latin(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    if not data:
        pdf.cell(0, 6, "none", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    peak = max(data.values()) or 1
    width = 110
    for label, value in data.items():
        y = pdf.get_y()
        pdf.cell(55, 6, _latin(label))
        pdf.set_fill_color(*colours.get(label, (70, 110, 180)))
        bar = max(width * value / peak, 0.5)
        pdf.rect(pdf.get_x(), y + 1, bar, 4, style="F")
        pdf.set_x(pdf.get_x() + bar + 2)
        pdf.cell(20, 6, str(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def render(head: dict[str, Any], entities: Iterable[dict[str, Any]]) -> bytes:
    """Render the report; ``head`` is reports.summary(), ``entities`` reports.rows(), drawn
    as they are read (never held as a list: the document's pages are the only copy)."""
    pdf = _Report(head["tenant"])
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 14, "Plant registry compliance report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    checkpoint = head.get("checkpoint") or {}
    lines = [
        f"Tenant: {head['tenant']}",
        f"Generated: {head['generated_at']} by {head['generated_by']}",
        f"Checkpoint: size {checkpoint.get('size', 'none')}",
        f"Root hash: {checkpoint.get('root', '-')}",
        f"Entities in this report: {head['total']}",
    ]
    audit = head.get("latest_audit")
    if audit:
        found = audit["finding_count"]
        lines.append(f"Latest audit: {audit['finished_at']} ({audit['mode']}), {found} finding(s)")
    else:
        lines.append("Latest audit: none recorded")
    for line in lines:
        pdf.cell(0, 7, _latin(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    by_status: dict[str, int] = {}
    for statuses in head["counts"].values():
        for status, n in statuses.items():
            by_status[status] = by_status.get(status, 0) + n
    _bar_chart(pdf, "Entities by status", by_status, STATUS_COLOURS)
    findings = (audit or {}).get("findings") or []
    by_kind: dict[str, int] = {}
    for finding in findings:
        by_kind[finding["kind"]] = by_kind.get(finding["kind"], 0) + 1
    _bar_chart(pdf, "Findings of the latest audit by kind", by_kind, {})

    pdf.add_page()
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Entities", new_x="LMARGIN", new_y="NEXT")
    widths = (22, 58, 10, 34, 14, 52)
    headers = ("Kind", "Name", "v", "Status", "Index", "Certified by / at")
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, headers, strict=True):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=7)
    for row in entities:
        cert = f"{row['certifier']} {row['certified_at'][:10]}" if row.get("certifier") else "-"
        cells = (
            row["entity_type"], row["name"][:40], row["version"], row["status"],
            row["log_index"], cert,
        )  # fmt: skip
        for w, value in zip(widths, cells, strict=True):
            pdf.cell(w, 5, _latin(value), border=1)
        pdf.ln()

    pdf.add_page()
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Findings of the latest audit", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    if not findings:
        pdf.cell(0, 6, "No findings.", new_x="LMARGIN", new_y="NEXT")
    for finding in findings:
        where = " ".join(
            f"{k}={finding[k]}"
            for k in ("entity_type", "entity_id", "version", "log_index", "section", "field")
            if finding.get(k) is not None
        )
        text = _latin(f"[{finding['kind']}] {where}: {finding['detail']}")
        # Back to the left margin after each one: multi_cell leaves x at the right edge.
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
