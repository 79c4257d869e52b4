"""Sentences kept whole when a report comes as a PDF: the splitter with hard-wrapped lines joined
(`fintag.data.unwrap`) against the same splitter with every line break a boundary (the named baseline, what
`segment` did before), measured in the same run.

Each corpus report (one paragraph a line) is typeset with reportlab (A4, 10.5 pt STSong-Light, CJK line
breaking: the column wraps every paragraph, pages break where they fall) and read back with pypdf, as
`fintag tag report.pdf` reads a PDF. A sentence of the text file is kept whole when the PDF gives exactly the
same normalised sentence; the rest were cut at a line end, or differ by pypdf's own spacing slips.

    python bench/wrapped_reports.py
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import fintag.data.split as split_module
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.normalize import normalize
from fintag.data.reader import read_report

logger = logging.getLogger("bench.wrapped_reports")


@dataclass
class WrappedConfig:
    corpus_dir: str = field(default="data/corpus", metadata={"help": "report files, one paragraph a line"})


def typeset(text: str, pdf: Path) -> None:
    """Write `text` to `pdf`, one paragraph per line, wrapped at the page's column."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    style = ParagraphStyle("body", fontName="STSong-Light", fontSize=10.5, leading=16, wordWrap="CJK")
    SimpleDocTemplate(str(pdf)).build([Paragraph(escape(line), style) for line in text.split("\n")])


def sentences(text: str, join_wrapped: bool = True) -> set[str]:
    """The normalised sentences (kind `sentence`) of `text`; `join_wrapped=False` is the baseline."""
    if join_wrapped:
        return {s.text for s in split_module.segment(text).sentences if s.kind == "sentence"}
    joins = split_module.soft_breaks
    split_module.soft_breaks = lambda lines, stands_alone=None: set()
    try:
        return {s.text for s in split_module.segment(text).sentences if s.kind == "sentence"}
    finally:
        split_module.soft_breaks = joins


def kept_whole(report: Path, workdir: Path) -> tuple[int, int, int]:
    """(sentences of the text file, kept whole from its PDF with joining, kept whole without)."""
    text = normalize(read_report(report).text).text
    pdf = workdir / f"{report.stem}.pdf"
    typeset(text, pdf)
    from_pdf = read_report(pdf).text
    want = sentences(text)
    return len(want), len(want & sentences(from_pdf)), len(want & sentences(from_pdf, join_wrapped=False))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    (cfg,) = parse_settings((WrappedConfig,), args, Path(__file__).name)
    reports = sorted(p for p in Path(cfg.corpus_dir).iterdir() if p.suffix in (".txt", ".md"))
    if not reports:
        logger.error("no .txt or .md report in %s", cfg.corpus_dir)
        return 1
    totals = [0, 0, 0]
    sys.stdout.write("| report | sentences | kept whole, lines joined | kept whole, every line a boundary |")
    sys.stdout.write("\n")
    sys.stdout.write("| --- | --- | --- | --- |\n")
    with tempfile.TemporaryDirectory() as tmp:
        for report in reports:
            row = kept_whole(report, Path(tmp))
            totals = [a + b for a, b in zip(totals, row)]
            sys.stdout.write(f"| {report.name} | {row[0]} | {row[1]} | {row[2]} |\n")
    n, joined, baseline = totals
    sys.stdout.write(
        f"| all | {n} | {joined} ({joined / n:.1%}) | {baseline} ({baseline / n:.1%}) |\n\n"
        f"sentences kept whole: {joined / max(baseline, 1):.2f}x the baseline's\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
