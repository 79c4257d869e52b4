"""Read report files (.txt, .md, .pdf) into text, detecting the encoding of text files; a PDF's text layer
loses its running headers and footers (`fintag.data.pdf_pages`).

Reports arrive as UTF-8 (with or without BOM), UTF-16, GB18030/GBK or Big5. A file that cannot be read
raises `ReportReadError`, which names the file, the problem and the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes
from fintag.data.normalize import CJK_RE
from fintag.data.pdf_pages import strip_running_lines

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".text", ".markdown")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + PDF_SUFFIXES
MAX_FILE_BYTES = 200 * 1024 * 1024
# Chinese legacy encodings tried when a file is not UTF-8, most specific first.
_CJK_ENCODINGS = ("gb18030", "big5")


class ReportReadError(Exception):
    """A report file that cannot be read; the message names the file, the problem and the fix."""

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. {fix}")


@dataclass(frozen=True)
class RawReport:
    report_id: str
    path: str
    text: str
    encoding: str


def report_id_for(path: str | os.PathLike[str]) -> str:
    """A report's id: its file name without the extension."""
    return Path(path).stem


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 saved without a byte-order mark (some Windows exports): NUL bytes on one side of the code
    units, and a decoding with no control characters but line breaks and tabs. None when it is not."""
    if len(data) % 2:
        return None
    head = data[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    # ASCII characters (line breaks, digits, punctuation) put NUL in their high byte; a few CJK characters
    # (一, U+4E00) put it in the low byte. In binary data NULs fall on both sides alike.
    for enc, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high < 4 * max(low, 1):
            continue
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if not any(ord(ch) < 32 and ch not in "\r\n\t\f" for ch in text):
            return text, enc
    return None


def decode_bytes(data: bytes, path: str | os.PathLike[str] = "<bytes>") -> tuple[str, str]:
    """Decode the bytes of a text report; return (text, encoding)."""
    if not data.strip():
        raise ReportReadError(path, "the file is empty", "check that the export wrote the report's text")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        unmarked = _utf16_without_bom(data)
        if unmarked is not None:
            return unmarked
        raise ReportReadError(
            path,
            "the file is binary (it contains NUL bytes and is not UTF-16 text)",
            "pass the report as .txt or .md saved as UTF-8 (or UTF-16 with a byte-order mark), or a .pdf "
            "with a text layer",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    candidates: dict[str, str] = {}
    for enc in _CJK_ENCODINGS:
        try:
            candidates[enc] = data.decode(enc)
        except UnicodeDecodeError:
            continue
    if len(candidates) > 1:
        # Both GB18030 and Big5 decode many byte strings; charset-normalizer's coherence measure
        # tells which decoding reads as language.
        best = from_bytes(data, cp_isolation=list(candidates)).best()
        if best is not None and best.encoding.replace("_", "") in candidates:
            enc = best.encoding.replace("_", "")
            return candidates[enc], enc
        enc = max(candidates, key=lambda e: len(CJK_RE.findall(candidates[e])))
        return candidates[enc], enc
    if candidates:
        enc, text = next(iter(candidates.items()))
        return text, enc
    best = from_bytes(data).best()
    if best is not None and best.chaos < 0.3:
        return str(best), best.encoding
    raise ReportReadError(
        path,
        "the encoding is not UTF-8, UTF-16, GB18030/GBK or Big5 and could not be detected",
        "re-save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
    )


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = strip_running_lines([page.extract_text() or "" for page in reader.pages])
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ReportReadError(
            path, f"the PDF cannot be parsed ({exc})", "check that the file is a complete PDF"
        ) from exc
    text = "\n".join(pages)
    if not text.strip():
        raise ReportReadError(
            path,
            "the PDF has no text layer (scanned pages?)",
            "run OCR on it first or pass the report as text",
        )
    return text


def read_report(path: str | os.PathLike[str]) -> RawReport:
    """Read one report file; raise `ReportReadError` with the fix when it cannot be read."""
    p = Path(path)
    if p.is_symlink():
        raise ReportReadError(p, "the path is a symbolic link", "pass the file it points to")
    if not p.exists():
        raise ReportReadError(p, "the file does not exist", "check the path")
    if not p.is_file():
        raise ReportReadError(p, "the path is not a regular file", "pass report files or a folder of them")
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ReportReadError(
            p,
            f"unsupported file type {p.suffix or '(none)'!r}",
            f"pass one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReportReadError(
                p, f"the file is {size} bytes, over {MAX_FILE_BYTES}", "split it into reports"
            )
        if p.suffix.lower() in PDF_SUFFIXES:
            with p.open("rb") as fh:
                if not fh.read(5).startswith(b"%PDF"):
                    raise ReportReadError(
                        p, "the file is named .pdf but is not a PDF", "check the file or rename it"
                    )
            return RawReport(report_id_for(p), str(p), _read_pdf(p), "pdf")
        data = p.read_bytes()
    except PermissionError as exc:
        raise ReportReadError(p, "permission denied", "make the file readable (chmod +r)") from exc
    except IsADirectoryError as exc:
        raise ReportReadError(p, "the path is a directory", "pass the files inside it") from exc
    text, encoding = decode_bytes(data, p)
    if not text.strip():
        raise ReportReadError(p, "the report holds no text", "check the export")
    return RawReport(report_id_for(p), str(p), text, encoding)


def iter_report_paths(inputs: list[str]) -> list[Path]:
    """Expand files, folders and globs into a sorted, de-duplicated list of report paths."""
    import glob

    found: dict[str, Path] = {}
    for item in inputs:
        matches = (
            [Path(m) for m in glob.glob(item, recursive=True)]
            if any(c in item for c in "*?[")
            else [Path(item)]
        )
        if not matches:
            raise ReportReadError(item, "no file matches this pattern", "check the glob or the path")
        for m in matches:
            if m.is_dir():
                for f in sorted(m.rglob("*")):
                    # Every report-named entry that is not a folder: a dangling symlink or a FIFO named
                    # x.txt is then refused by `read_report` with its reason instead of vanishing silently.
                    if not f.is_dir() and f.suffix.lower() in SUPPORTED_SUFFIXES:
                        found.setdefault(str(f), f)
            else:
                found.setdefault(str(m), m)
    return [found[k] for k in sorted(found)]
