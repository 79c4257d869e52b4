import os
import random

import pytest
from fintag.data.reader import ReportReadError, decode_bytes, iter_report_paths, read_report

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
        ("report.docx", "文本".encode(), "unsupported file type"),
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
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path = tmp_path / "report.pdf"
    c = canvas.Canvas(str(path))
    c.setFont("STSong-Light", 12)
    c.drawString(50, 800, "光模块需求旺盛,订单饱满。")
    c.save()
    assert "光模块需求旺盛" in read_report(path).text


def test_pdf_without_text_layer(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "scan.pdf"
    c = canvas.Canvas(str(path))
    c.rect(10, 10, 100, 100)
    c.save()
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
