"""Whole sentences from broker-style PDFs: the splitter reading each page's column (ours) against one
column for the whole text (the named baseline, what it did before), measured in the same run.

The analysts' twelve test PDFs (`tests/reports/pdfs/`: a first page with a sidebar beside a narrower
column, running headers and footers, tables, captions) are read as `fintag tag` reads them. A unit of kind
sentence counts as whole when it ends a sentence (end punctuation, closing quotes and brackets aside); a
line cut at the column ends none. The title and dates found are counted too.

    python bench/pdf_reports.py
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import fintag.data.split as split_module
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.reader import read_report
from fintag.data.split import ends_sentence

logger = logging.getLogger("bench.pdf_reports")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PdfReportsConfig:
    pdf_dir: str = field(default=str(ROOT / "tests" / "reports" / "pdfs"), metadata={"help": "PDF reports"})


@dataclass
class Counts:
    sentences: int = 0
    whole: int = 0


def count(pdfs: list[Path], per_page: bool) -> Counts:
    """Sentence units and those ending a sentence, with each page's column read or not."""
    saved = split_module._page_starts
    if not per_page:
        split_module._page_starts = lambda norm: []
    try:
        out = Counts()
        for pdf in pdfs:
            units = [s for s in split_module.segment(read_report(pdf).text).sentences if s.kind == "sentence"]
            out.sentences += len(units)
            out.whole += sum(ends_sentence(s.text) for s in units)
        return out
    finally:
        split_module._page_starts = saved


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    (cfg,) = parse_settings((PdfReportsConfig,), args, Path(__file__).name)
    pdfs = sorted(Path(cfg.pdf_dir).glob("*.pdf"))
    if not pdfs:
        logger.error("no .pdf in %s", cfg.pdf_dir)
        return 1
    base, ours = count(pdfs, per_page=False), count(pdfs, per_page=True)
    sys.stdout.write("| variant | sentence units | ending a sentence |\n| --- | --- | --- |\n")
    for name, c in (("one column for the whole text (baseline)", base), ("each page's column (ours)", ours)):
        sys.stdout.write(f"| {name} | {c.sentences} | {c.whole} ({c.whole / c.sentences:.1%}) |\n")
    cut_base, cut_ours = base.sentences - base.whole, ours.sentences - ours.whole
    sys.stdout.write(
        f"\ncut units (not ending a sentence): {cut_base} -> {cut_ours}, "
        f"{cut_base / max(cut_ours, 1):.2f}x fewer\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
