"""Read report files (.txt, .md, .pdf, .html, .docx) into text, detecting the encoding of text files; a
PDF's text layer loses its running headers and footers (`fintag.data.pdf_pages`), and so does text whose
pages stand apart by form feeds (`pdftotext`'s output) or end in numbered footers (text copied out of a
PDF); a web page or Word file is laid out one paragraph a line (`fintag.data.markup`).

Reports arrive as UTF-8 (with or without BOM), UTF-16, GB18030/GBK or Big5. A file that cannot be read
raises `ReportReadError`, which names the file, the problem and the fix.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes
from fintag.data.markup import (
    DOCX_SUFFIXES,
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    docx_to_text,
    html_to_text,
    plain_markdown,
    without_bold,
)
from fintag.data.normalize import CJK_RE
from fintag.data.paragraphs import resume_cut_paragraphs
from fintag.data.pdf_pages import footnotes_after_sentence, pages_of_text, strip_running_lines

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".text", ".markdown")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + PDF_SUFFIXES + HTML_SUFFIXES + DOCX_SUFFIXES
# Formats a report comes in that are not read, with what to do instead.
_UNSUPPORTED_FIXES = {
    ".doc": "it is a Word 97-2003 file: save it as .docx (File > Save As) or as PDF",
    ".wps": "it is a WPS Office file: save it as .docx or as PDF",
    ".rtf": "save it as .docx, as PDF or as plain text",
    ".mht": "save the page as HTML (.html) instead of a web archive",
    ".mhtml": "save the page as HTML (.html) instead of a web archive",
}
_HTML_START_RE = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a Word 97-2003 file, or an encrypted Office file
MAX_FILE_BYTES = 200 * 1024 * 1024
# Chinese legacy encodings tried when a file is not UTF-8, most specific first. Big5 is read as cp950,
# Windows' Big5, which Hong Kong and Taiwan reports are saved in: strict Big5 lacks some of its characters
# (恒 of 恒生, €) and would leave such a file to be misread as GB18030. Reported as "big5".
_CJK_ENCODINGS = ("gb18030", "cp950")
_ENCODING_NAMES = {"cp950": "big5"}
# A file that is UTF-8 but for a few bad bytes (cut off mid-character, one stray byte) is read as UTF-8
# with those bytes replaced, and a warning says where: at most two bad sequences or this share of its
# valid multi-byte characters, of which it needs ten (a GBK or Big5 file has bad sequences in most of its
# characters).
_UTF8_MAX_BAD_SHARE = 0.01


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


# What a report's text is made of: whitespace, ASCII, Latin letters, general punctuation, CJK symbols and
# kana, CJK ideographs, Hangul, full-width forms. A wrong decoding lands mostly elsewhere (other scripts,
# the private-use area).
_TEXT_RE = re.compile(
    r"[\s\x20-\x7e\u00a0-\u024f\u2000-\u206f\u2100-\u27ff\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef]"
)
_MIN_TEXT_SHARE = 0.95


def _reads_as_text(text: str) -> bool:
    return bool(text) and len(_TEXT_RE.findall(text)) >= _MIN_TEXT_SHARE * len(text)


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 saved without a byte-order mark (some Windows exports): NUL bytes on one side of the code
    units, and a decoding with no control characters but line breaks and tabs that reads as text (a UTF-8
    file with a stray NUL decodes as UTF-16 too, into other scripts). None when it is not."""
    if len(data) % 2:
        return None
    head = data[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    # ASCII characters (line breaks, digits, punctuation) put NUL in their high byte; a few CJK characters
    # (一, U+4E00) put it in the low byte. In binary data NULs fall on both sides alike.
    for enc, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        # NULs on one side only (a Chinese report's line breaks alone), or far more on one side.
        if not high or (low and high < 4 * low):
            continue
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if not any(ord(ch) < 32 and ch not in "\r\n\t\f" for ch in text) and _reads_as_text(text):
            return text, enc
    return None


def _lenient_utf8(
    data: bytes, path: str | os.PathLike[str], exc: UnicodeDecodeError, offset: int = 0
) -> str | None:
    """UTF-8 with a few damaged spots (a file cut off mid-character, a stray byte, which may split a
    character into up to three bad sequences) read with the bad bytes replaced by U+FFFD and a warning that
    says where (`offset`: bytes before `data` in the file, a byte-order mark's); None when the bytes are
    not mostly UTF-8. GBK or Big5 breaks UTF-8 in most of its characters: many spots, many bad bytes."""
    text = data.decode("utf-8", errors="replace")
    genuine = data.count("\ufffd".encode())  # U+FFFD written in the file itself
    bad = text.count("\ufffd") - genuine
    spots = len(re.findall("\ufffd+", text)) - genuine
    multibyte = sum(1 for ch in text if ord(ch) > 127) - bad
    allowed = max(2, _UTF8_MAX_BAD_SHARE * multibyte)
    if multibyte < 10 or spots > allowed or bad > 3 * allowed:
        return None
    logger.warning(
        "%s: read as UTF-8 with %d undecodable byte sequence(s) replaced by U+FFFD (the first at byte %d: "
        "%r); the file may be cut off or damaged, re-export it to tag those characters",
        path, bad, offset + exc.start, data[exc.start : exc.start + 4],
    )  # fmt: skip
    return text


def _decode_marked(data: bytes, path: str | os.PathLike[str]) -> tuple[str, str]:
    """A file with a byte-order mark: UTF-8 or UTF-16, refused by name when its bytes do not decode, or when
    they are plainly the other encoding (a UTF-16 mark before UTF-8 text decodes into CJK-looking gibberish;
    a UTF-8 mark before UTF-16, into text full of NULs)."""
    utf8 = data.startswith(b"\xef\xbb\xbf")
    enc, name, mark = ("utf-8", "utf-8-sig", 3) if utf8 else ("utf-16", "utf-16", 2)
    body = data[3:] if utf8 else data  # Python's UTF-16 codec reads the mark itself (and the byte order)
    rest = data[mark:]
    other = (
        ("UTF-16" if _utf16_without_bom(rest) else None)
        if utf8
        else ("UTF-8" if _reads_as_utf8(rest) else None)
    )
    if other:
        raise ReportReadError(
            path,
            f"the file starts with a {enc.upper()} byte-order mark but its bytes are {other} text",
            f"remove the first {mark} bytes (`tail -c +{mark + 1} FILE > FIXED`) or re-export the report as "
            "UTF-8",
        )
    try:
        text = body.decode(enc)
    except UnicodeDecodeError as exc:
        if utf8:
            lenient = _lenient_utf8(body, path, exc, offset=mark)
            if lenient is not None:
                return lenient, name
        raise ReportReadError(
            path,
            f"the file starts with a {enc.upper()} byte-order mark but its bytes are not valid {enc.upper()} "
            f"(at byte {exc.start + (mark if utf8 else 0)}: {exc.reason})",
            "the file is damaged or cut off: re-export it",
        ) from exc
    return text, name


def _reads_as_utf8(data: bytes) -> bool:
    """Whether `data` is UTF-8 that reads as text (`_reads_as_text`; UTF-16 bytes decode as UTF-8 full
    of NULs, which do not)."""
    try:
        return _reads_as_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        return False


def decode_bytes(data: bytes, path: str | os.PathLike[str] = "<bytes>") -> tuple[str, str]:
    """Decode the bytes of a text report; return (text, encoding). Raises only `ReportReadError`."""
    if not data.strip():
        raise ReportReadError(path, "the file is empty", "check that the export wrote the report's text")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        unmarked = _utf16_without_bom(data)
        if unmarked is not None:
            return unmarked
        raise ReportReadError(
            path,
            "the file is binary (it contains NUL bytes and is not UTF-16 text)",
            "pass the report as .txt or .md saved as UTF-8 (or UTF-16 with a byte-order mark), or a .pdf "
            "with a text layer",
        )
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return _decode_marked(data, path)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        lenient = _lenient_utf8(data, path, exc)
        if lenient is not None:
            return lenient, "utf-8"
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
        else:
            enc = max(candidates, key=lambda e: len(CJK_RE.findall(candidates[e])))
        return candidates[enc], _ENCODING_NAMES.get(enc, enc)
    if candidates:
        enc, text = next(iter(candidates.items()))
        return text, _ENCODING_NAMES.get(enc, enc)
    best = from_bytes(data).best()
    if best is not None and best.chaos < 0.3:
        return str(best), best.encoding
    raise ReportReadError(
        path,
        "the encoding is not UTF-8, UTF-16, GB18030/GBK or Big5 and could not be detected",
        "re-save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
    )


def _read_pdf(data: bytes, path: str | os.PathLike[str]) -> str:
    """A PDF's text layer, running headers and footers removed. Restricted PDFs (an owner password only,
    common for broker reports) open with the empty user password; a PDF that needs a password to open,
    or that pypdf cannot parse in any way, raises `ReportReadError`, so one bad file never stops a batch."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise FileNotDecryptedError("a password is needed")
        pages = footnotes_after_sentence(
            strip_running_lines([page.extract_text() or "" for page in reader.pages])
        )
    except FileNotDecryptedError as exc:
        raise ReportReadError(
            path,
            "the PDF is password-protected",
            "open it with its password and save an unprotected copy, or pass the report as text",
        ) from exc
    except DependencyError as exc:
        raise ReportReadError(
            path, f"the PDF is encrypted and cannot be decrypted here ({exc})", "pip install 'pypdf[crypto]'"
        ) from exc
    except Exception as exc:  # a malformed PDF can raise anything from inside the parser
        raise ReportReadError(
            path,
            f"the PDF cannot be parsed ({type(exc).__name__}: {exc})",
            "check that the file is a complete PDF",
        ) from exc
    # A form feed between pages: the splitter reads each page's column width (`fintag.data.split.segment`).
    text = "\f".join(page for page in pages if page.strip())
    if not text.strip():
        raise ReportReadError(
            path,
            "the PDF has no text layer (scanned pages?)",
            "run OCR on it first or pass the report as text",
        )
    return text


def check_suffix(path: str | os.PathLike[str]) -> None:
    """Raise `ReportReadError` unless the file's name says a kind of report that is read."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ReportReadError(
            path,
            f"unsupported file type {suffix or '(none)'!r}",
            _UNSUPPORTED_FIXES.get(suffix, f"pass one of {', '.join(SUPPORTED_SUFFIXES)}"),
        )


def _read_docx(data: bytes, path: str | os.PathLike[str]) -> str:
    """A Word file's text (`fintag.data.markup.docx_to_text`); one that is not a readable .docx raises
    `ReportReadError` saying what it is instead."""
    if data.startswith(_OLE_MAGIC):
        raise ReportReadError(
            path,
            "the file is a Word 97-2003 .doc or a password-protected .docx, not a readable .docx",
            "open it in Word and save an unprotected copy as .docx (or as PDF)",
        )
    try:
        return docx_to_text(data)
    except Exception as exc:  # python-docx raises zipfile's, lxml's or its own errors on a damaged file
        raise ReportReadError(
            path,
            f"the file is not a readable .docx ({type(exc).__name__}: {exc})",
            "check that the file is complete, or save it again as .docx or PDF",
        ) from exc


# A charset a page declares (<meta charset="gbk">, <meta http-equiv=... content="text/html; charset=gb2312">),
# looked for in its first bytes as a browser does.
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CHARSET_LOOK = 4096
# Chinese pages declare GB2312 or GBK and are written in their superset; Big5 pages in Windows' Big5 (as
# `_CJK_ENCODINGS` reads text files).
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5": "cp950"}
_WESTERN = ("iso8859-1", "cp1252", "ascii")


def declared_charset(data: bytes) -> str | None:
    """The Python codec for the charset an HTML page declares in a <meta> tag, or None (no declaration,
    or one Python does not know)."""
    m = _CHARSET_RE.search(data[:_CHARSET_LOOK])
    if m is None:
        return None
    name = m.group(1).decode("ascii", "replace").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    if codec.startswith("utf-16") or codec.startswith("utf-32"):
        return "utf-8"  # a page that says UTF-16 in ASCII is not UTF-16: browsers read it as UTF-8
    if codec in _WESTERN:  # a Chinese page left with an editor's default: UTF-8 when its bytes are UTF-8
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return codec
        return "utf-8"
    return codec


def _decode_html(data: bytes, path: str | os.PathLike[str]) -> tuple[str, str]:
    """A web page's markup and its encoding: the charset its <meta> declares when the bytes decode in it,
    else as a text file's (`decode_bytes`)."""
    charset = declared_charset(data)
    if charset is not None:
        try:
            return data.decode(charset).removeprefix("\ufeff"), _ENCODING_NAMES.get(charset, charset)
        except UnicodeDecodeError:
            logger.warning("%s: the page declares %s but is not in it; detecting its encoding", path, charset)
    return decode_bytes(data, path)


def read_report_bytes(data: bytes, path: str | os.PathLike[str], report_id: str | None = None) -> RawReport:
    """A report from its bytes (a file's, an upload's, standard input's): a PDF when it starts with the PDF
    signature (whatever it is named: a PDF saved as .txt or piped in is read as a PDF), else text in the
    encoding `decode_bytes` detects. `path` names it in messages and in the result."""
    name = str(path)
    is_pdf = data.lstrip()[:5].startswith(b"%PDF")
    if Path(name).suffix.lower() in PDF_SUFFIXES and not is_pdf:
        raise ReportReadError(path, "the file is named .pdf but is not a PDF", "check the file or rename it")
    if is_pdf:
        if Path(name).suffix.lower() not in PDF_SUFFIXES:
            logger.warning("%s: the content is a PDF (it starts with %%PDF); read as a PDF", name)
        text, encoding = _read_pdf(data, path), "pdf"
    elif Path(name).suffix.lower() in DOCX_SUFFIXES:
        text, encoding = _read_docx(data, path), "docx"
    elif Path(name).suffix.lower() in HTML_SUFFIXES or _HTML_START_RE.match(data[:64]):
        if Path(name).suffix.lower() not in HTML_SUFFIXES:  # a page saved as .txt, or piped in by curl
            logger.warning("%s: the content is a web page (it starts with <html>); read as HTML", name)
        markup, encoding = _decode_html(data, path)
        try:
            text = html_to_text(markup)
        except RecursionError as exc:
            raise ReportReadError(
                path, "the page's elements are nested too deeply to lay out", "save it as text or PDF"
            ) from exc
    else:
        text, encoding = decode_bytes(data, path)
        text = plain_markdown(text)
        # Pages apart by form feeds (pdftotext's output) or ending in numbered footers (text copied out of a
        # PDF): their running lines go as a PDF's.
        pages = text.split("\f") if "\f" in text else pages_of_text(text)
        if pages:
            pages = footnotes_after_sentence(strip_running_lines(pages))
            text = "\f".join(p.strip("\n") for p in pages if p.strip())
        text = resume_cut_paragraphs(text)
        if Path(name).suffix.lower() in MARKDOWN_SUFFIXES:
            text = without_bold(text)
    if not text.strip():
        raise ReportReadError(path, "the report holds no text", "check the export")
    return RawReport(report_id if report_id is not None else report_id_for(name), name, text, encoding)


def read_report(path: str | os.PathLike[str]) -> RawReport:
    """Read one report file; raise `ReportReadError` with the fix when it cannot be read."""
    p = Path(path)
    if p.is_symlink():
        raise ReportReadError(p, "the path is a symbolic link", "pass the file it points to")
    if not p.exists():
        raise ReportReadError(p, "the file does not exist", "check the path")
    if not p.is_file():
        raise ReportReadError(p, "the path is not a regular file", "pass report files or a folder of them")
    check_suffix(p)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReportReadError(
                p, f"the file is {size} bytes, over {MAX_FILE_BYTES}", "split it into reports"
            )
        data = p.read_bytes()
    except PermissionError as exc:
        raise ReportReadError(p, "permission denied", "make the file readable (chmod +r)") from exc
    except IsADirectoryError as exc:
        raise ReportReadError(p, "the path is a directory", "pass the files inside it") from exc
    return read_report_bytes(data, p)


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
