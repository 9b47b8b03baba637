"""The report's fonts: which shipped font draws which script, and the placeholder for what
none of them holds (see fonts/README.md for the files and their licences)."""

from __future__ import annotations

import re
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import TTFFont

FONTS = Path(__file__).with_name("fonts")
MAIN = "noto"
# Family -> file; the main family first, then the fallbacks fpdf2 tries in this order.
FALLBACKS = {
    "noto-hebrew": "NotoSansHebrew-Regular.ttf",
    "noto-arabic": "NotoSansArabic-Regular.ttf",
    "droid-cjk": "DroidSansFallbackFull.ttf",
    "nanum-hangul": "NanumGothic.ttf",
}
# Text that needs shaping: right-to-left scripts (Hebrew, Arabic and their presentation forms)
# and combining marks. Everything else is drawn glyph by glyph, which is six times faster.
_NEEDS_SHAPING = re.compile("[\u0300-\u036f\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")


_covered: frozenset[int] | None = None  # every code point some shipped font draws


def register(pdf: FPDF) -> None:
    """Add the shipped fonts to ``pdf`` and make the others fall back behind Noto Sans."""
    global _covered
    pdf.add_font(MAIN, "", str(FONTS / "NotoSans-Regular.ttf"))
    pdf.add_font(MAIN, "B", str(FONTS / "NotoSans-Bold.ttf"))
    for family, name in FALLBACKS.items():
        pdf.add_font(family, "", str(FONTS / name))
    pdf.set_fallback_fonts(list(FALLBACKS), exact_match=False)
    if _covered is None:  # from the cmaps fpdf2 has just read (no second copy of the fonts)
        _covered = frozenset(
            point for font in pdf.fonts.values() if isinstance(font, TTFFont) for point in font.cmap
        )


def drawable(text: object) -> str:
    """``text`` as the report draws it: every character a shipped font holds as written, any
    other (an emoji, say) as the visible placeholder ``[U+XXXX]``; controls are dropped."""
    value = "" if text is None else str(text)
    if value.isascii() and value.isprintable():
        return value
    covered = _covered
    if covered is None:
        register(FPDF())
        covered = _covered or frozenset()
    out = []
    for ch in value:
        point = ord(ch)
        if point in covered or ch in "\u200d\ufe0f":
            out.append(ch if ch not in "\u200d\ufe0f" else "")
        elif ch.isprintable():
            out.append(f"[U+{point:04X}]")
    return "".join(out)


def needs_shaping(text: str) -> bool:
    """Whether ``text`` must go through HarfBuzz (right-to-left or combining marks)."""
    return not text.isascii() and _NEEDS_SHAPING.search(text) is not None
