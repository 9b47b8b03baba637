"""The compliance report as a PDF for people and auditors (issue 26): a cover (scope, who and
when, the signed checkpoint note, key ids, the latest audit), a summary with charts, the
entities grouped by kind (or, above the stated size, only the exceptions), the findings and a
last page saying how to verify. Every script renders (shared/evidence/report_fonts.py); the
PDF is signed afterwards (shared/evidence/report_signing.py)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from fpdf import FPDF

from shared.evidence import report_fonts
from shared.evidence.report_fonts import drawable

STATUS_COLOURS = {
    "draft": (160, 160, 160),
    "pending_certification": (230, 160, 40),
    "certified": (40, 150, 80),
    "suspended": (200, 60, 60),
    "deprecated": (90, 90, 90),
}
MARK = "!"  # drawn in red in the entity table where a finding concerns the entity
FONT = report_fonts.MAIN
# The entity table: (header, width in mm); 186 mm between the margins.
COLUMNS = (
    ("Name", 48), ("Id", 15), ("Ver", 8), ("Status", 26), ("Cert. ver", 12),
    ("Cert. index", 15), ("Certificate digest", 26), ("Certified at (UTC)", 32), (MARK, 4),
)  # fmt: skip
FINDING_COLUMNS = (
    ("Kind", 24), ("Entity (kind)", 40), ("Ver", 8), ("Index", 12), ("Section.field", 42),
    ("Message", 60),
)  # fmt: skip


class _Report(FPDF):
    def __init__(self, tenant: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.tenant = tenant
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(f"Plant registry compliance report - {tenant}")
        self.set_creator("Plant registry")
        report_fonts.register(self)
        self.table_header: tuple[tuple[str, int], ...] | None = None

    def header(self) -> None:
        if self.table_header and self.page_no() > 1:
            _header_row(self, self.table_header)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(100, 100, 100)
        self.set_text_shaping(False)
        self.cell(
            0, 8, drawable(f"{self.tenant} · page {self.page_no()} of {{nb}} · "
                           "signed PDF: see the last page to verify"),
            align="C",
        )  # fmt: skip
        self.set_text_color(0, 0, 0)


def _restore_font(pdf: FPDF, text: str) -> None:
    """Select the current font again in the page's content after ``text`` was drawn.

    fpdf2 2.8.9 draws a cell that needs a fallback font inside q/Q, selecting the fallback
    font there, and believes afterwards that the page still has its own font selected: the
    next cell's text would have no font (or the wrong one). Re-selecting it costs a few
    bytes, and only after text that is not ASCII."""
    font = pdf.current_font
    if font is not None and not text.isascii():
        pdf._out(f"BT /F{font.i} {pdf.font_size_pt:.2f} Tf ET")


def _text(pdf: FPDF, w: float, h: float, value: Any, **kwargs: Any) -> None:
    """One cell of text as written: shaped (HarfBuzz, bidi) only where the script needs it."""
    text = drawable(value)
    pdf.set_text_shaping(report_fonts.needs_shaping(text))
    pdf.cell(w, h, text, **kwargs)
    _restore_font(pdf, text)


def _lines(pdf: FPDF, w: float, h: float, value: Any, **kwargs: Any) -> None:
    """Wrapped text as written, left-aligned (never justified: no stretched spacing)."""
    text = drawable(value)
    pdf.set_text_shaping(report_fonts.needs_shaping(text))
    pdf.multi_cell(w, h, text, align="L", new_x="LMARGIN", new_y="NEXT", **kwargs)
    _restore_font(pdf, text)


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` mm (short text is never measured)."""
    if len(text) * 1.3 < width or pdf.get_string_width(text) <= width - 1:
        return text
    while text and pdf.get_string_width(text + "…") > width - 1:
        text = text[:-1]
    return text + "…"


def _header_row(pdf: FPDF, columns: tuple[tuple[str, int], ...]) -> None:
    pdf.set_font(FONT, "B", 7)
    pdf.set_fill_color(230, 230, 230)
    for title, width in columns:
        _text(pdf, width, 5, title, border=1, fill=True)
    pdf.ln()
    pdf.set_font(FONT, size=6.5)


def _heading(pdf: FPDF, title: str, size: int = 13) -> None:
    pdf.set_font(FONT, "B", size)
    _text(pdf, 0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)


def _pairs(pdf: FPDF, pairs: list[tuple[str, Any]]) -> None:
    for label, value in pairs:
        pdf.set_font(FONT, "B", 9)
        _text(pdf, 45, 5.5, label)
        pdf.set_font(FONT, size=9)
        _lines(pdf, 0, 5.5, value)


def note_key_ids(note: str | None) -> list[str]:
    """The key ids (hex) of a signed note's signature lines (``— <name> <base64(id||sig)>``)."""
    ids = []
    for line in (note or "").split("\n\n", 1)[-1].splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == "\u2014":
            try:
                ids.append(f"{parts[1]} {base64.b64decode(parts[2])[:4].hex()}")
            except (binascii.Error, ValueError):
                continue
    return ids


def _audit_result(audit: Mapping[str, Any]) -> str:
    found = audit["finding_count"] or 0
    return "clean: every check held" if not found else f"{found} finding(s): see Findings"


def _cover(pdf: _Report, head: Mapping[str, Any], signing: Mapping[str, str]) -> None:
    pdf.add_page()
    pdf.set_font(FONT, "B", 20)
    pdf.cell(0, 12, "Plant registry compliance report", new_x="LMARGIN", new_y="NEXT")
    filters = head["filters"]
    scope = ", ".join(f"{k} = {v}" for k, v in filters.items() if v) or "every kind and status"
    edition = head.get("edition") or {}
    checkpoint = head.get("checkpoint") or {}
    audit = head.get("latest_audit")
    _pairs(
        pdf,
        [
            ("Tenant", head["tenant"]),
            ("Scope (filters)", scope),
            ("Generated at", head["generated_at"]),
            ("Generated by", head["generated_by"]),
            ("Entities in scope", head["total"]),
            ("Edition", edition.get("text", "full: every entity in scope is listed")),
        ],
    )
    pdf.ln(2)
    _heading(pdf, "What the log says", 12)
    _pairs(
        pdf,
        [
            ("Checkpoint size", checkpoint.get("size", "none")),
            ("Root hash (base64)", checkpoint.get("root", "-")),
            ("Log key ids", ", ".join(note_key_ids(checkpoint.get("note"))) or "-"),
            ("Witness cosignatures", "none (no witness cosigns this log yet)"),
            ("Report signing key", f"{signing.get('key_id', '-')} (PAdES signature of this "
                                   "PDF; certificate at GET /export/report/certificate)"),
            ("Certificate SHA-256", signing.get("certificate_sha256", "-")),
        ],
    )  # fmt: skip
    if checkpoint.get("note"):
        pdf.set_font(FONT, "B", 9)
        pdf.cell(0, 6, "Signed checkpoint note (as text):", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=7.5)
        pdf.set_fill_color(245, 245, 245)
        _lines(pdf, 0, 4, checkpoint["note"].rstrip("\n"), border=1, fill=True)
        pdf.set_font(FONT, size=9)
    pdf.ln(2)
    _heading(pdf, "Latest audit", 12)
    if audit:
        _pairs(
            pdf,
            [
                ("Run id", audit["id"]),
                ("Mode", audit["mode"]),
                ("Finished at", audit["finished_at"]),
                ("Entries verified", audit["checkpoint_size"]),
                ("Result", _audit_result(audit)),
            ],
        )
    else:
        _pairs(pdf, [("Result", "no audit has completed for this tenant")])


def _bar_chart(pdf: FPDF, title: str, data: dict[str, int], colours: dict[str, Any]) -> None:
    _heading(pdf, title, 11)
    if not data:
        pdf.cell(0, 6, "none", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    peak = max(data.values()) or 1
    width = 110
    for label, value in data.items():
        y = pdf.get_y()
        _text(pdf, 55, 6, label)
        pdf.set_fill_color(*colours.get(label, (70, 110, 180)))
        bar = max(width * value / peak, 0.5)
        pdf.rect(pdf.get_x(), y + 1, bar, 4, style="F")
        pdf.set_x(pdf.get_x() + bar + 2)
        pdf.cell(20, 6, str(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _summary(pdf: _Report, head: Mapping[str, Any], findings: list[dict[str, Any]]) -> None:
    pdf.add_page()
    _heading(pdf, "Summary")
    by_status: dict[str, int] = {}
    for statuses in head["counts"].values():
        for status, n in statuses.items():
            by_status[status] = by_status.get(status, 0) + n
    _bar_chart(pdf, "Entities by status", by_status, STATUS_COLOURS)
    by_kind: dict[str, int] = {}
    for finding in findings:
        by_kind[finding["kind"]] = by_kind.get(finding["kind"], 0) + 1
    _bar_chart(pdf, "Findings of the latest audit by kind", by_kind, {})
    _heading(pdf, "Entities by kind and status", 11)
    statuses = list(STATUS_COLOURS)
    widths = {"pending_certification": 34}
    columns = (("Kind", 36), *((s, widths.get(s, 22)) for s in statuses), ("Total", 20))
    _header_row(pdf, columns)
    pdf.set_font(FONT, size=8)
    for kind, counts in sorted(head["counts"].items()):
        cells = [kind, *(counts.get(s, 0) for s in statuses), sum(counts.values())]
        for (_, width), value in zip(columns, cells, strict=True):
            _text(pdf, width, 5, value, border=1)
        pdf.ln()


def _entity_row(pdf: FPDF, row: Mapping[str, Any], marked: bool) -> None:
    certified = row.get("certified_version") is not None
    digest = (row.get("certificate_digest") or "").removeprefix("sha256:")
    cells = (
        _fit(pdf, drawable(row["name"]), COLUMNS[0][1]),
        "…" + row["id"][-8:],  # UUIDv7: the leading digits are a timestamp, alike in a batch
        row["version"],
        row["status"],
        f"v{row['certified_version']}" if certified else "-",
        row.get("certificate_log_index") if certified else "-",
        digest[:16] if digest else "-",
        row.get("certified_at") or "-",
    )
    for (_, width), value in zip(COLUMNS[:-1], cells, strict=True):
        _text(pdf, width, 4.5, value, border=1)
    if marked:
        pdf.set_text_color(200, 0, 0)
        pdf.set_font(FONT, "B", 7)
    pdf.cell(COLUMNS[-1][1], 4.5, MARK if marked else "", border=1, align="C")
    if marked:
        pdf.set_text_color(0, 0, 0)
        pdf.set_font(FONT, size=6.5)
    pdf.ln()


def _entities(
    pdf: _Report,
    title: str,
    intro: str,
    groups: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
    marked: set[str],
) -> None:
    pdf.add_page()
    _heading(pdf, title)
    pdf.set_font(FONT, size=8)
    _lines(pdf, 0, 4.5, intro)
    for kind, rows in groups:
        pdf.table_header = None
        pdf.ln(1)
        _heading(pdf, kind, 10)
        _header_row(pdf, COLUMNS)
        pdf.table_header = COLUMNS
        for row in rows:
            _entity_row(pdf, row, row["id"] in marked)
    pdf.table_header = None


def clean_message(finding: Mapping[str, Any]) -> str:
    """The finding's detail once: without a leading ``field:`` the field column already says."""
    detail = str(finding.get("detail") or "")
    field = finding.get("field")
    while field and detail.startswith(f"{field}: "):
        detail = detail[len(field) + 2 :]
    return " ".join(detail.split())


def _findings(
    pdf: _Report,
    findings: list[dict[str, Any]],
    names: Mapping[str, str],
    shown: int,
) -> None:
    pdf.ln(4)
    if pdf.get_y() > 240:
        pdf.add_page()
    _heading(pdf, "Findings of the latest audit")
    if not findings:
        pdf.cell(0, 6, "None: the latest audit found nothing.", new_x="LMARGIN", new_y="NEXT")
        return
    if shown < len(findings):
        pdf.set_font(FONT, size=8)
        note = f"The first {shown} of {len(findings)} findings; all are in the JSON and the bundle."
        pdf.cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
    _header_row(pdf, FINDING_COLUMNS)
    pdf.table_header = FINDING_COLUMNS
    for finding in findings[:shown]:
        entity_id = finding.get("entity_id")
        name = names.get(entity_id or "", (entity_id or "-")[:8])
        entity = f"{name} ({finding['entity_type']})" if finding.get("entity_type") else name
        where = ".".join(str(finding[k]) for k in ("section", "field") if finding.get(k))
        where = where or ("field unnamed" if finding.get("field_unnamed") else "")
        cells = (
            finding["kind"],
            _fit(pdf, drawable(entity), FINDING_COLUMNS[1][1]),
            finding.get("version") if finding.get("version") is not None else "-",
            finding.get("log_index") if finding.get("log_index") is not None else "-",
            _fit(pdf, drawable(where or "-"), FINDING_COLUMNS[4][1]),
        )
        y = pdf.get_y()
        message = drawable(clean_message(finding))
        pdf.set_text_shaping(report_fonts.needs_shaping(message))
        wrapped = pdf.multi_cell(FINDING_COLUMNS[5][1], 4.5, message, dry_run=True,
                                 output="LINES")  # fmt: skip
        assert isinstance(wrapped, list)  # output="LINES": the text's lines
        lines = len(wrapped)
        height = 4.5 * max(lines, 1)
        if y + height > pdf.h - 15:
            pdf.add_page()
            y = pdf.get_y()
        for (_, width), value in zip(FINDING_COLUMNS, cells, strict=False):
            _text(pdf, width, height, value, border=1)
        _lines(pdf, FINDING_COLUMNS[5][1], 4.5, message, border=1)
    pdf.table_header = None


def _how_to_verify(pdf: _Report, head: Mapping[str, Any], signing: Mapping[str, str]) -> None:
    pdf.add_page()
    _heading(pdf, "How to verify this report")
    checkpoint = head.get("checkpoint") or {}
    size, root = checkpoint.get("size", 0), checkpoint.get("root", "-")
    kind = (head.get("filters") or {}).get("kind")
    steps = [
        "1. The PDF signature. This file carries a PAdES signature (CMS, SHA-512, Ed25519) by "
        f"the report-signing key {signing.get('key_id', '-')}, whose certificate (SHA-256 "
        f"{signing.get('certificate_sha256', '-')}) the registry serves at "
        "GET /export/report/certificate. Any PAdES validator given that certificate as trusted "
        "checks it (pyHanko's validate_pdf_signature; its CLI, package pyhanko-cli: "
        "pyhanko sign validate --trust report-certificate.pem plant-report.pdf). It covers "
        "every byte of the file except the signature value itself (the /ByteRange around "
        "/Contents): one byte changed anywhere else and validation fails.",
        "2. The log behind it. Download the evidence bundle of the same tenant: "
        f"GET /export/bundle{'?kind=' + kind if kind else ''} (or plant export bundle "
        f"--tenant {head['tenant']} --out bundle.json), then run, offline, with the log's "
        "public key pinned (GET /log/keys):",
        "    plant verify bundle.json --key <vkey>",
        f"and check that it verifies a checkpoint of size >= {size} that is consistent with "
        f"this report's checkpoint: size {size}, root {root}.",
        "3. The entity rows. The CSV and JSON reports list every entity with its digest and "
        "certificate digest; each comes with a detached DSSE envelope (the X-Report-Envelope "
        "header) that plant verify-report FILE ENVELOPE --key <report vkey> checks.",
        "4. This file's own SHA-256 is over every byte of the file as delivered, signature "
        "included. A file cannot print its own digest, so the registry sends it in the "
        "X-Report-SHA256 header and plant export prints it; compare it with "
        "sha256sum plant-report.pdf.",
    ]
    pdf.set_font(FONT, size=9)
    for step in steps:
        mono = step.startswith("    ")
        pdf.set_font("Courier" if mono else FONT, size=9)
        _lines(pdf, 0, 5, step.strip() if mono else step)
        pdf.ln(1.5)


def render(
    head: dict[str, Any],
    groups: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
    concerned: Mapping[str, Mapping[str, Any]],
    signing: Mapping[str, str],
) -> bytes:
    """The unsigned PDF. ``head`` is reports.summary() (with ``edition``); ``groups`` the
    entity rows of each kind, drawn as they are read (never held); ``concerned`` the rows of
    the entities a finding names, by id; ``signing`` the report key's public description."""
    pdf = _Report(head["tenant"])
    pdf.alias_nb_pages()
    findings = list((head.get("latest_audit") or {}).get("findings") or [])
    _cover(pdf, head, signing)
    _summary(pdf, head, findings)
    edition = head.get("edition") or {}
    marked = set(concerned)
    if edition.get("full", True):
        intro = (
            "Every entity in scope, grouped by kind, in the order created. 'Cert. ver' is the "
            "version the certificate covers (not necessarily the current one); 'Cert. index' "
            f"the certificate's log index. {MARK} in red: a finding of the latest audit "
            "concerns the entity."
        )
        _entities(pdf, "Entities", intro, groups, marked)
    else:
        intro = (
            f"{edition['text']} Listed here: the exceptions, i.e. the entities a finding of "
            "the latest audit concerns."
        )
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for row in concerned.values():
            by_kind.setdefault(row["entity_type"], []).append(row)
        _entities(pdf, "Exceptions", intro, sorted(by_kind.items()), marked)
    names = {entity_id: row["name"] for entity_id, row in concerned.items()}
    _findings(pdf, findings, names, int(edition.get("findings_shown", len(findings))))
    _how_to_verify(pdf, head, signing)
    return bytes(pdf.output())
