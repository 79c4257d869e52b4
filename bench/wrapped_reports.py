"""Sentences kept whole when a report comes as a PDF: the reader and splitter as they are (running headers
and footers dropped, `fintag.data.pdf_pages`; hard-wrapped lines joined, `fintag.data.unwrap`) against the
same code with every line break a boundary and the furniture kept (the named baseline, what they did
before), and with the lines joined but the furniture kept, measured in the same run.

Each corpus report (one paragraph a line) is typeset with reportlab (A4, 10.5 pt STSong-Light, CJK line
breaking: the column wraps every paragraph, pages break where they fall, a running header and a footer with
the page number on every page) and read back with pypdf, as `fintag tag report.pdf` reads a PDF. A sentence
of the text file is kept whole when the PDF gives exactly the same normalised sentence; the rest were cut at
a line end or a page break, or differ by pypdf's own spacing slips. Footer units are counted too.

    python bench/wrapped_reports.py
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import fintag.data.reader as reader_module
import fintag.data.split as split_module
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.normalize import normalize
from fintag.data.reader import read_report

logger = logging.getLogger("bench.wrapped_reports")

FOOTER = "请务必阅读正文之后的信息披露和免责申明"
VARIANTS = {  # name: (join_wrapped, drop_furniture)
    "every line a boundary, furniture kept (baseline)": (False, False),
    "lines joined, furniture kept": (True, False),
    "lines joined, furniture dropped (ours)": (True, True),
}


@dataclass
class WrappedConfig:
    corpus_dir: str = field(default="data/corpus", metadata={"help": "report files, one paragraph a line"})


def typeset(text: str, pdf: Path) -> None:
    """Write `text` to `pdf`, one paragraph per line, wrapped at the page's column."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    def furniture(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("STSong-Light", 9)
        canvas.drawString(72, 800, "证券研究报告·行业周报 | 通信")
        canvas.drawString(72, 40, FOOTER)
        canvas.drawString(500, 40, str(doc.page))
        canvas.restoreState()

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    style = ParagraphStyle("body", fontName="STSong-Light", fontSize=10.5, leading=16, wordWrap="CJK")
    SimpleDocTemplate(str(pdf)).build(
        [Paragraph(escape(line), style) for line in text.split("\n")],
        onFirstPage=furniture,
        onLaterPages=furniture,
    )


@contextmanager
def features(join_wrapped: bool, drop_furniture: bool) -> Iterator[None]:
    """Switch the line joining and the furniture dropping off for the baselines."""
    saved = split_module.wrapped_breaks, reader_module.strip_running_lines
    if not join_wrapped:
        split_module.wrapped_breaks = lambda lines, after=None: set()
    if not drop_furniture:
        reader_module.strip_running_lines = lambda pages: pages
    try:
        yield
    finally:
        split_module.wrapped_breaks, reader_module.strip_running_lines = saved


@dataclass
class Counts:
    sentences: int
    whole: int
    footers: int


def kept_whole(report: Path, workdir: Path, join_wrapped: bool = True, drop_furniture: bool = True) -> Counts:
    """The sentences of the text file, how many its PDF gives whole, and the PDF's footer units."""
    text = normalize(read_report(report).text).text
    pdf = workdir / f"{report.stem}.pdf"
    typeset(text, pdf)
    want = {s.text for s in split_module.segment(text).sentences if s.kind == "sentence"}
    with features(join_wrapped, drop_furniture):
        units = split_module.segment(read_report(pdf).text).sentences
    got = {s.text for s in units if s.kind == "sentence"}
    return Counts(len(want), len(want & got), sum(s.text == FOOTER for s in units))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    (cfg,) = parse_settings((WrappedConfig,), args, Path(__file__).name)
    reports = sorted(p for p in Path(cfg.corpus_dir).iterdir() if p.suffix in (".txt", ".md"))
    if not reports:
        logger.error("no .txt or .md report in %s", cfg.corpus_dir)
        return 1
    sys.stdout.write("| report | sentences | " + " | ".join(f"{name}: whole / footers" for name in VARIANTS))
    sys.stdout.write(" |\n|" + " --- |" * (2 + len(VARIANTS)) + "\n")
    totals = {name: [0, 0, 0] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for report in reports:
            row = {name: kept_whole(report, Path(tmp), *flags) for name, flags in VARIANTS.items()}
            for name, c in row.items():
                totals[name] = [
                    totals[name][0] + c.sentences,
                    totals[name][1] + c.whole,
                    totals[name][2] + c.footers,
                ]
            n = next(iter(row.values())).sentences
            cells = " | ".join(f"{c.whole} / {c.footers}" for c in row.values())
            sys.stdout.write(f"| {report.name} | {n} | {cells} |\n")
    n = next(iter(totals.values()))[0]
    cells = " | ".join(f"{t[1]} ({t[1] / n:.1%}) / {t[2]}" for t in totals.values())
    sys.stdout.write(f"| all | {n} | {cells} |\n\n")
    base = totals[next(iter(VARIANTS))][1]
    for name, t in totals.items():
        sys.stdout.write(f"{name}: {t[1]} sentences whole, {t[1] / max(base, 1):.2f}x the baseline's\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
