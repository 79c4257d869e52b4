import os
import random

import pytest
from fintag.data.reader import (
    ReportReadError,
    decode_bytes,
    iter_report_paths,
    read_report,
    read_report_bytes,
)

from .conftest import write_pdf

SIMPLIFIED = "字节跳动大幅催化算力产业链,国产替代加速推进。投资评级:买入(维持)。"
TRADITIONAL = "字節跳動大幅催化算力產業鏈,國產替代加速推進。投資評級:買入(維持)。"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (SIMPLIFIED, "gbk"),
        (SIMPLIFIED, "gb18030"),
        (TRADITIONAL, "big5"),
        (TRADITIONAL, "utf-8"),
        (TRADITIONAL, "utf-8-sig"),
        (SIMPLIFIED, "utf-16"),
    ],
)
def test_encodings_are_detected(tmp_path, text, encoding):
    path = tmp_path / f"r_{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    report = read_report(path)
    assert report.text == text
    assert report.report_id == f"r_{encoding}"


def test_big5_is_not_mistaken_for_gbk():
    long_text = TRADITIONAL * 3 + "光模塊出貨量持續攀升,資本開支指引再度上調。"
    text, enc = decode_bytes(long_text.encode("big5"))
    assert enc == "big5" and text == long_text


def test_windows_big5_with_characters_strict_big5_lacks():
    """Hong Kong reports saved as cp950: 恒 (恒生) and € are not in strict Big5; the file must not fall
    through to a GB18030 misreading."""
    text = "恒生科技指數本週上漲3%,我們維持買入評級。\n投資評級:買入(維持)\n歐元區收入 €12 億。\n"
    assert decode_bytes(text.encode("cp950")) == (text, "big5")


def test_utf8_cut_off_or_with_a_stray_byte_is_read_with_a_warning(caplog):
    text = (SIMPLIFIED + "\nRevenue grew 18% YoY, with total online sales up.\n") * 4 + "维持买入"
    data = text.encode("utf-8")
    cut = data[: len(data) - 1]  # the last character loses its last byte
    decoded, enc = decode_bytes(cut, "cut.txt")
    assert enc == "utf-8" and decoded == text[:-1] + "\ufffd"
    middle = data.index(b"Revenue") + 10
    stray = data[:middle] + b"\x80" + data[middle:]
    decoded, enc = decode_bytes(stray, "stray.txt")
    assert enc == "utf-8" and decoded.replace("\ufffd", "") == text
    assert f"the first at byte {middle}" in caplog.text and "stray.txt" in caplog.text


def test_a_stray_byte_inside_a_character_of_a_short_report_is_one_damaged_spot(caplog):
    """The byte splits the character into four bad sequences (lead, stray, two continuations): still one
    damaged spot, read with a warning whose offset is the file's, a byte-order mark included."""
    import re

    text = "国产替代加速推进,维持买入评级。" * 4
    data = text.encode("utf-8")
    middle = len(data) // 2 + 1  # inside a character
    decoded, enc = decode_bytes(data[:middle] + b"\xff" + data[middle:], "short.txt")
    assert enc == "utf-8" and decoded.count("\ufffd") == 4 and len(decoded) == len(text) + 3
    marked = b"\xef\xbb\xbf" + data[:middle] + b"\xff" + data[middle:]
    assert decode_bytes(marked, "bom.txt")[1] == "utf-8-sig"
    plain, bom = (int(n) for n in re.findall(r"the first at byte (\d+)", caplog.text))
    assert bom == plain + 3 and data[plain] >= 0xE0  # the lead byte of the damaged character


@pytest.mark.parametrize("text", [SIMPLIFIED * 3, "Revenue grew 18% YoY, with online sales up.\n" * 4])
def test_a_stray_nul_in_utf8_is_binary_not_utf16(text):
    """One NUL on one side of an even-length UTF-8 file would pass for UTF-16 without a BOM; the decoding
    does not read as text (other scripts, private use), so it is refused."""
    data = text.encode("utf-8")
    for at in range(1, 60, 7):
        damaged = data[:at] + b"\x00" + data[at:]
        damaged += b" " * (len(damaged) % 2)
        with pytest.raises(ReportReadError, match="binary"):
            decode_bytes(damaged)


def test_gbk_is_not_read_as_damaged_utf8():
    """GBK bytes break UTF-8 in most characters, so they never pass for UTF-8 with a few bad bytes."""
    for n in (1, 3, 30):
        text = "The company 公司 revenue 营收增长, 国产替代 " * n
        assert decode_bytes(text.encode("gbk")) == (text, "gb18030")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xef\xbb\xbf" + "公司".encode() + b"\x80\x81\x82\n", "UTF-8 byte-order mark"),
        ("公司业绩超预期".encode("utf-16") + b"\x00", "UTF-16 byte-order mark"),
    ],
)
def test_a_byte_order_mark_with_bad_bytes_is_refused_by_name(data, problem):
    with pytest.raises(ReportReadError, match=problem) as info:
        decode_bytes(data, "<stdin>")
    assert "re-export" in info.value.fix


REPORT = "算力需求持续旺盛，国产芯片替代进程加快。\nWe maintain Buy on the company.\n" * 4


@pytest.mark.parametrize(
    ("data", "mark", "actual", "skip"),
    [
        (b"\xff\xfe" + REPORT.encode(), "UTF-16", "UTF-8", 2),
        (b"\xfe\xff" + REPORT.encode(), "UTF-16", "UTF-8", 2),
        (b"\xef\xbb\xbf" + REPORT.encode("utf-16-le"), "UTF-8", "UTF-16", 3),
        (b"\xef\xbb\xbf" + ("The company reported growth. " * 6).encode("utf-16-le"), "UTF-8", "UTF-16", 3),
    ],
)
def test_a_byte_order_mark_that_does_not_match_its_bytes_is_named(data, mark, actual, skip):
    """A UTF-16 mark before UTF-8 text used to decode into CJK-looking gibberish, tagged as zh-Hant."""
    with pytest.raises(
        ReportReadError, match=f"{mark} byte-order mark but its bytes are {actual} text"
    ) as info:
        decode_bytes(data, "r.txt")
    assert f"remove the first {skip} bytes" in info.value.fix
    fixed = data[skip:]
    assert decode_bytes(fixed)[0] in (REPORT, fixed.decode("utf-16-le"))


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("评级：买入 🚀🚀", "utf-8-sig"),
        ("Buy rating 👍👍", "utf-16"),
        ("𠀀𠀁𠀂 公司", "utf-16"),
        ("β系数 α=0.5, β=1.2, σ=0.3, Δ=2", "utf-8-sig"),
        ("Рейтинг: покупать", "utf-8-sig"),
        ("Buy", "utf-16"),
    ],
)
def test_a_byte_order_mark_before_text_of_any_script_is_read(text, encoding):
    """Only plain evidence of the other encoding refuses a marked file: emoji, Greek, Cyrillic and CJK
    Extension B are text."""
    assert decode_bytes(text.encode(encoding)) == (text, encoding)


def test_chinese_only_utf16_without_a_byte_order_mark_is_read():
    """Only the line breaks put NULs in a Chinese report's UTF-16: two of them must do."""
    text = "国产替代加速推进，维持买入评级\n公司是国内领先的算力芯片企业，受益于国产替代。\n"
    assert decode_bytes(text.encode("utf-16-le")) == (text, "utf-16-le")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_read(encoding):
    """Windows exports without a BOM; "一" (U+4E00) puts a NUL on the other side of its code unit."""
    text = SIMPLIFIED + "\n一季度营收同比增长18%,一致预期上调。\nRevenue grew 18% YoY.\n"
    assert decode_bytes(text.encode(encoding)) == (text, encoding)


def test_binary_with_nul_bytes_is_not_taken_for_utf16():
    with pytest.raises(ReportReadError, match="binary") as info:
        decode_bytes(random.Random(0).randbytes(4096) + b"\x00" * 64 + bytes(range(256)) * 8)
    assert "UTF-16 with a byte-order mark" in info.value.fix


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"   \n\n", "empty"),
        ("binary.txt", b"\x00\x01\x02PK\x03\x04" * 50, "binary"),
        ("report.doc", "文本".encode(), "unsupported file type"),
        ("fake.pdf", b"this is not a pdf", "not a PDF"),
    ],
)
def test_bad_files_raise_with_problem_and_fix(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReportReadError) as info:
        read_report(path)
    assert problem in info.value.problem
    assert info.value.fix and str(path) in str(info.value)


def test_missing_symlink_and_directory(tmp_path):
    with pytest.raises(ReportReadError, match="does not exist"):
        read_report(tmp_path / "nope.txt")
    real = tmp_path / "real.txt"
    real.write_text(SIMPLIFIED, encoding="utf-8")
    link = tmp_path / "link.txt"
    os.symlink(real, link)
    with pytest.raises(ReportReadError, match="symbolic link"):
        read_report(link)
    with pytest.raises(ReportReadError, match="not a regular file"):
        read_report(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.txt"
    path.write_text(SIMPLIFIED, encoding="utf-8")
    path.chmod(0)
    with pytest.raises(ReportReadError, match="permission"):
        read_report(path)


def test_pdf_text_layer(tmp_path):
    path = write_pdf(tmp_path / "report.pdf", ["光模块需求旺盛,订单饱满。"])
    assert "光模块需求旺盛" in read_report(path).text


def _pdf_bytes(tmp_path, text: str = "光模块需求旺盛,订单饱满。") -> bytes:
    return write_pdf(tmp_path / "made.pdf", [text]).read_bytes()


def test_pdf_bytes_are_read_as_a_pdf_whatever_the_name(tmp_path):
    data = _pdf_bytes(tmp_path)
    for name in ("<stdin>", "report.txt", "report.pdf"):
        raw = read_report_bytes(data, name)
        assert raw.encoding == "pdf" and "光模块需求旺盛" in raw.text and "BaseFont" not in raw.text
    saved = tmp_path / "saved_as.txt"
    saved.write_bytes(data)
    assert read_report(saved).encoding == "pdf"


def _encrypted(tmp_path, user_password: str) -> bytes:
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(_pdf_bytes(tmp_path))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_restricted_pdf_opens_and_password_protected_pdf_is_refused_by_name(tmp_path):
    """Broker PDFs often carry an owner password only (no copying, no printing): they open with the empty
    user password. One that needs a password to open is refused with that reason."""
    assert "光模块需求旺盛" in read_report_bytes(_encrypted(tmp_path, ""), "restricted.pdf").text
    with pytest.raises(ReportReadError, match="password-protected") as info:
        read_report_bytes(_encrypted(tmp_path, "secret"), "locked.pdf")
    assert "unprotected copy" in info.value.fix


def test_malformed_pdf_is_a_read_error_not_a_crash(tmp_path):
    data = _pdf_bytes(tmp_path)
    broken = data[: len(data) // 2] + b"\x00garbage" + data[len(data) // 2 + 40 :]
    with pytest.raises(ReportReadError, match="PDF"):
        read_report_bytes(broken[:200], "truncated.pdf")
    try:
        read_report_bytes(broken, "damaged.pdf")
    except ReportReadError:
        pass  # refused by name; pypdf may also recover the text, which is as good


def test_pdf_without_text_layer(tmp_path):
    path = write_pdf(tmp_path / "scan.pdf", [])
    with pytest.raises(ReportReadError, match="no text layer"):
        read_report(path)


def test_iter_report_paths_expands_folders_and_globs(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("x", encoding="utf-8")
    (tmp_path / "sub" / "c.bin").write_text("x", encoding="utf-8")
    paths = iter_report_paths([str(tmp_path), str(tmp_path / "*.txt")])
    assert [p.name for p in paths] == ["a.txt", "b.md"]
    with pytest.raises(ReportReadError, match="no file matches"):
        iter_report_paths([str(tmp_path / "*.nothing")])


def test_text_with_form_feeds_loses_its_running_lines_as_a_pdf_does(tmp_path):
    """`pdftotext report.pdf` writes each page's header and footer and a form feed between pages: read as
    pages, the lines repeated at their edges go, so a sentence cut by the page break runs on."""
    header, footer = "天孚通信(300394.SZ) 公司深度研究", "请务必阅读正文之后的免责条款部分  {} / 4"
    bodies = [
        "公司光引擎出货量同比增长3.5倍,随着泰国二期良率提升",
        ",我们预计2026年公司综合毛利率回升至55.4%。硅光方案渗透率提升对无源器件单价形成一定压力",
        ",但光引擎量增可以弥补。",
        "风险提示:北美客户资本开支不及预期。",
    ]
    pages = [f"{header}\n{body}\n{footer.format(i + 1)}\n" for i, body in enumerate(bodies)]
    path = tmp_path / "report.txt"
    path.write_text("\f".join(pages) + "\f", encoding="utf-8")
    text = read_report(path).text
    assert header not in text and "免责条款" not in text
    assert "随着泰国二期良率提升\f,我们预计2026年" in text  # the page break leaves only a form feed
    # Two pages: the footers go and the second page's header (the first page keeps its top lines: a
    # two-page report's second header may repeat its title); one page keeps them all.
    path.write_text("\f".join(pages[:2]), encoding="utf-8")
    two = read_report(path).text
    assert two.count(header) == 1 and two.startswith(header) and "免责条款" not in two
    path.write_text(pages[0], encoding="utf-8")
    assert read_report(path).text.count(header) == 1


def test_text_copied_out_of_a_pdf_is_cut_into_pages_at_its_numbered_footers(tmp_path):
    """No form feeds, but a numbered footer ends every page: the pages are cut after it, and the footer and
    the running header at the next page's top go; a sentence that runs over the page break runs on."""
    from fintag.data.split import segment

    header, footer = "公司深度研究  天孚通信(300394.SZ)", "请务必阅读正文之后的免责条款部分  {} / 12"
    text = (
        "2025年公司综合毛利率为53.7%,同比下降3.2个百分点,主要受泰国工厂爬坡期折旧摊销增加影响,随着泰国二期"
        "良率提升,我们预计2026年公司综合毛利率有望随规模效应的逐步显现而企稳并回升至55.4%,光引擎出货量也将"
        "同比增长3.5倍。硅光方案渗透率提升对公司无源器件单价形成一定压力,但光引擎量增可以弥补,海外产能可覆盖北"
        "美客户约七成的需求,关税不确定性对公司交付的影响有限。风险提示:北美客户资本开支不及预期,技术路线变化。"
    )
    lines = [text[i : i + 34] for i in range(0, len(text), 34)]
    pages = [lines[:2], lines[2:5], lines[5:]]  # the first break cuts the first sentence
    written = [f"{header}\n" + "\n".join(page) + f"\n{footer.format(n + 3)}" for n, page in enumerate(pages)]
    path = tmp_path / "copied.txt"
    path.write_text("\n".join(written) + "\n", encoding="utf-8")
    read = read_report(path).text
    assert header not in read and "免责条款" not in read
    units = [s.text for s in segment(read).sentences]
    assert units[0] == text[: text.index("。") + 1]  # whole across the page break
    # Footers that repeat fewer than three times are no page ends: nothing is removed.
    path.write_text("\n".join(written[:2]) + "\n", encoding="utf-8")
    assert read_report(path).text.count(header) == 2


def test_numbered_lines_that_end_sentences_cut_no_pages():
    from fintag.data.pdf_pages import pages_of_text

    text = "\n".join(f"第{i}页的要点:公司营收同比增长{i}0%。" for i in range(1, 6))
    assert pages_of_text(text) is None


@pytest.mark.parametrize(
    "lines",
    [
        ["公司{}盈利预测:2025-2027年EPS分别为6.12/8.45/10.23元"],  # figures with slashes
        ["资料来源:Wind,数据截至2025/11/2{}", "单位:亿元"],  # a date with slashes
        ["| 2025/11/1{} | 148.15 | 2.1% |"],  # a table's rows
    ],
)
def test_repeated_lines_with_figures_are_no_page_footers_and_stay(tmp_path, lines):
    from fintag.data.pdf_pages import pages_of_text

    text = "\n".join(
        line.format(i) for i in range(1, 4) for line in [*lines, "正文中的一句话,说明公司业绩增长。"]
    )
    assert pages_of_text(text) is None
    path = tmp_path / "r.txt"
    path.write_text(text, encoding="utf-8")
    assert read_report(path).text == text


def test_page_footers_must_count_up():
    from fintag.data.pdf_pages import pages_of_text

    body = "正文中的一句话,说明公司业绩增长。"
    rising = "\n".join(f"{body}\n请务必阅读正文之后的免责声明部分  {n} / 9" for n in (2, 3, 4))
    assert pages_of_text(rising) is not None
    same = "\n".join(f"{body}\n请务必阅读正文之后的免责声明部分  3 / 9" for _ in range(3))
    assert pages_of_text(same) is None
