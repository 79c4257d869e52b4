"""Web pages (.html) and Word files (.docx) read as reports (`fintag.data.markup` through the reader)."""

from __future__ import annotations

import io
import zipfile

import pytest
from fintag.data.markup import docx_to_text, html_to_text
from fintag.data.reader import ReportReadError, declared_charset, read_report, read_report_bytes

from tests.conftest import summary_of

PAGE = """<!DOCTYPE html>
<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>中际旭创研报_东方财富网</title><script>var rating = "卖出";</script>
<style>p {color: red}</style></head>
<body>
<nav><a href="/">首页</a> <a href="/report">研报中心</a></nav>
<h1>中际旭创(300308)：1.6T光模块放量，
盈利能力再上台阶</h1>
<table class="sidebar"><tr><td>投资评级</td><td>买入（维持）</td></tr>
<tr><td>目标价</td><td><span>562.80</span>元</td></tr></table>
<p>我们认为公司<b>2026年</b>净利润有望达到178.6亿元，
同比增长74.4%。<br>参考可比公司估值，给予公司2026年35倍PE，对应目标价562.80元，维持“买入”评级。</p>
<ul><li>数据中心需求强劲，800G出货量环比增长三成；</li><li><p>1.6T良率爬坡顺利。</p></li></ul>
<table><thead><tr><th>指标</th><th>2025E</th><th>2026E</th></tr></thead>
<tbody><tr><td>营业收入（百万元）</td><td>35,810</td><td>58,420</td></tr></tbody></table>
<!-- 评级：卖出 -->
<form><input value="搜索"><button>提交</button></form>
</body></html>"""


def test_a_web_page_reads_as_its_report_one_block_a_line():
    text = html_to_text(PAGE)
    lines = text.split("\n")
    assert lines[0] == "中际旭创(300308)：1.6T光模块放量，盈利能力再上台阶"  # a source line break between
    # Chinese characters is nothing, as a browser shows it
    assert (
        "| 投资评级 | 买入（维持） |" in lines and "| 目标价 | 562.80元 |" in lines
    )  # inline markup runs on
    assert "我们认为公司2026年净利润有望达到178.6亿元，同比增长74.4%。" in lines  # <b> inline, <br> a break
    assert "- 数据中心需求强劲，800G出货量环比增长三成；" in lines and "- 1.6T良率爬坡顺利。" in lines
    assert "| 营业收入（百万元） | 35,810 | 58,420 |" in lines
    for furniture in ("首页", "卖出", "color", "东方财富网", "搜索", "提交"):  # nav, script, comment, style,
        assert furniture not in text  # title, form


def test_a_web_page_in_gbk_is_decoded_by_its_declared_charset_and_summarised(tmp_path):
    path = tmp_path / "report.html"
    path.write_bytes(PAGE.encode("gbk"))
    report = read_report(path)
    assert report.encoding == "gb18030"  # GB2312 pages are written in its superset
    summary, units = summary_of(report.text)
    assert summary["title"]["text"] == "中际旭创(300308)：1.6T光模块放量，盈利能力再上台阶"
    assert {k: v["value"] for k, v in summary["fields"].items()} == {
        "rating": "买入(维持)",  # a sidebar table of keys and values gives the header's fields
        "target_price": "562.80元",
    }
    sentences = [u["text_normalized"] for u in units if u["kind"] == "sentence"]
    assert "参考可比公司估值,给予公司2026年35倍PE,对应目标价562.80元,维持“买入”评级。" in sentences
    assert not any("35,810" in s for s in sentences)


def test_a_web_page_piped_in_or_saved_as_text_is_read_as_a_page(caplog):
    report = read_report_bytes(PAGE.replace("gb2312", "utf-8").encode(), "<stdin>")
    assert report.text.startswith("中际旭创(300308)") and "<p>" not in report.text
    assert "read as HTML" in caplog.text
    plain = read_report_bytes("<公司点评> 维持买入评级。".encode(), "note.txt")  # text that opens with "<"
    assert plain.text == "<公司点评> 维持买入评级。"


@pytest.mark.parametrize(
    ("head", "charset"),
    [
        (b'<meta charset="GBK">', "gb18030"),
        (b"<meta http-equiv='Content-Type' content='text/html; charset=big5'>", "cp950"),
        (b'<meta charset="utf-8">', "utf-8"),
        (b'<meta charset="no-such-charset">', None),
        (b"<p>no declaration</p>", None),
    ],
)
def test_the_declared_charset_is_read_from_the_meta_tag(head, charset):
    assert declared_charset(b"<html><head>" + head + b"</head>") == charset


def test_a_page_that_is_not_in_its_declared_charset_is_detected_instead(tmp_path, caplog):
    path = tmp_path / "mislabelled.htm"
    path.write_bytes(PAGE.replace("gb2312", "utf-8").encode("gb18030"))
    report = read_report(path)
    assert report.encoding == "gb18030" and "盈利能力再上台阶" in report.text
    assert "declares utf-8" in caplog.text


def _docx(build) -> bytes:
    from docx import Document

    doc = Document()
    build(doc)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _add_text_box(paragraph, lines: list[str]) -> None:
    """A text box anchored in `paragraph`, written twice as Word writes it (DrawingML and a VML fallback)."""
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    body = "".join(f"<w:p><w:r><w:t>{line}</w:t></w:r></w:p>" for line in lines)
    mc = 'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
    run = parse_xml(
        f'<w:r {nsdecls("w")} {mc}><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>'
        f"<w:txbxContent>{body}</w:txbxContent></w:drawing></mc:Choice>"
        f"<mc:Fallback><w:pict><w:txbxContent>{body}</w:txbxContent></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )
    paragraph._p.append(run)


def _word_report(doc) -> None:
    section = doc.sections[0]
    section.header.paragraphs[0].text = "东岳证券 公司点评 请务必阅读正文之后的免责声明"
    doc.add_heading("中际旭创(300308)：1.6T光模块放量，盈利能力再上台阶", level=1)
    table = doc.add_table(rows=2, cols=2)
    for row, (key, value) in zip(
        table.rows, [("投资评级", "买入（维持）"), ("目标价", "562.80元")], strict=True
    ):
        row.cells[0].text, row.cells[1].text = key, value
    p = doc.add_paragraph("我们认为公司2026年净利润有望达到178.6亿元，")
    p.add_run("同比增长74.4%。").bold = True
    _add_text_box(p, ["分析师：张三", "执业证书编号：S0100521010001"])
    doc.add_paragraph("数据中心需求强劲；", style="List Bullet")
    doc.add_paragraph("参考可比公司估值，给予公司2026年35倍PE，对应目标价562.80元，维持“买入”评级。")


def test_a_word_file_reads_one_paragraph_or_row_a_line_its_text_boxes_once():
    text = docx_to_text(_docx(_word_report))
    lines = text.split("\n")
    assert lines[:3] == [
        "中际旭创(300308)：1.6T光模块放量，盈利能力再上台阶",
        "| 投资评级 | 买入（维持） |",
        "| 目标价 | 562.80元 |",
    ]
    # the text box anchored in the paragraph, once (not its VML copy), before the paragraph's own runs
    assert lines[3:6] == [
        "分析师：张三",
        "执业证书编号：S0100521010001",
        "我们认为公司2026年净利润有望达到178.6亿元，同比增长74.4%。",
    ]
    assert lines[6] == "- 数据中心需求强劲；"
    assert "免责声明" not in text  # the running header is page furniture


def test_a_word_report_is_summarised_like_its_text(tmp_path):
    path = tmp_path / "report.docx"
    path.write_bytes(_docx(_word_report))
    report = read_report(path)
    assert report.encoding == "docx"
    summary, units = summary_of(report.text)
    assert summary["title"]["text"] == "中际旭创(300308)：1.6T光模块放量，盈利能力再上台阶"
    assert {k: v["value"] for k, v in summary["fields"].items()} == {
        "rating": "买入(维持)",
        "target_price": "562.80元",
    }
    kinds = {u["text_normalized"]: u["kind"] for u in units}
    assert kinds["分析师:张三"] == "contact"
    assert kinds["我们认为公司2026年净利润有望达到178.6亿元,同比增长74.4%。"] == "sentence"


@pytest.mark.parametrize(
    ("name", "data", "problem", "fix"),
    [
        (
            "old.doc",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
            "unsupported file type '.doc'",
            "save it as .docx",
        ),
        (
            "locked.docx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
            "password-protected .docx",
            "unprotected",
        ),
        ("text.docx", "投资评级:买入".encode(), "not a readable .docx", "save it again"),
        ("report.wps", b"\0" * 100, "unsupported file type '.wps'", "WPS Office"),
    ],
)
def test_word_files_that_cannot_be_read_name_what_they_are(tmp_path, name, data, problem, fix):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ReportReadError) as info:
        read_report(path)
    assert problem in info.value.problem and fix in info.value.fix


def test_a_docx_zip_without_a_document_is_refused_and_a_pdf_named_docx_is_read_as_a_pdf(tmp_path):
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("hello.txt", "not a document")
    with pytest.raises(ReportReadError, match=r"not a readable \.docx"):
        read_report_bytes(broken.getvalue(), "broken.docx")
    from tests.conftest import write_pdf

    pdf = write_pdf(tmp_path / "x.pdf", ["投资评级:买入(维持)", "公司业绩超预期。"]).read_bytes()
    assert read_report_bytes(pdf, "misnamed.docx").encoding == "pdf"


def test_html_that_leaves_its_elements_open_is_read_as_a_browser_shows_it():
    rows = html_to_text("<table><tr><td>投资评级<td>买入(维持)<tr><td>目标价<td>21.50元</table>")
    assert rows.split("\n") == ["| 投资评级 | 买入(维持) |", "| 目标价 | 21.50元 |"]
    many = html_to_text("<body>" + "<p>段落。" * 3000 + "</body>")  # 3,000 unclosed <p>: no recursion
    assert many.count("\n") == 2999
    assert html_to_text("<div>第一段。</div>第二段。") == "第一段。\n第二段。"  # text outside any block
    assert html_to_text("<a href=x>立讯精密(002475):业绩超预期</a>") == "立讯精密(002475):业绩超预期"


def test_a_page_nested_too_deeply_is_a_read_error(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text("<div>" * 5000 + "公司业绩超预期。" + "</div>" * 5000, encoding="utf-8")
    try:
        report = read_report(path)
    except ReportReadError as exc:
        assert "nested too deeply" in exc.problem and "save it as text or PDF" in exc.fix
    else:
        assert "公司业绩超预期。" in report.text


def test_a_layout_table_is_read_cell_by_cell_not_as_one_row():
    page = (
        "<table><tr><td><h1>AI服务器订单饱满</h1><p>公司三季度收入超预期。</p><p>维持买入评级。</p></td>"
        "<td>投资评级:买入(维持)<br>目标价:21.5元</td></tr></table>"
    )
    assert html_to_text(page).split("\n") == [
        "AI服务器订单饱满",
        "公司三季度收入超预期。",
        "维持买入评级。",
        "投资评级:买入(维持)",
        "目标价:21.5元",
    ]

    def layout(doc) -> None:
        cells = doc.add_table(rows=1, cols=2).rows[0].cells
        cells[0].text = "投资要点"
        cells[0].add_paragraph("公司发布三季报,收入超预期。")
        cells[1].text = "投资评级:买入(维持)"
        cells[1].add_paragraph("目标价:21.5元")

    lines = docx_to_text(_docx(layout)).split("\n")
    assert lines == ["投资要点", "公司发布三季报,收入超预期。", "投资评级:买入(维持)", "目标价:21.5元"]


def test_word_numbering_turned_off_headings_and_non_breaking_hyphens():
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    def build(doc) -> None:
        p = doc.add_paragraph("不是列表的段落。", style="List Bullet")
        p._p.get_or_add_pPr().append(parse_xml(f'<w:numPr {nsdecls("w")}><w:numId w:val="0"/></w:numPr>'))
        doc.add_heading("投资要点", level=1)
        q = doc.add_paragraph("Non")
        q._p.append(parse_xml(f"<w:r {nsdecls('w')}><w:noBreakHyphen/><w:t>GAAP净利润2025</w:t></w:r>"))
        q._p.append(parse_xml(f"<w:r {nsdecls('w')}><w:noBreakHyphen/><w:t>2027E持续增长。</w:t></w:r>"))
        cell = doc.add_table(rows=1, cols=2).rows[0].cells[0]
        _add_text_box(cell.paragraphs[0], ["框内文字"])

    lines = docx_to_text(_docx(build)).split("\n")
    assert lines[:3] == ["不是列表的段落。", "投资要点", "Non-GAAP净利润2025-2027E持续增长。"]
    assert lines[3] == "| 框内文字 |"  # a text box in a table's cell, once


def test_a_page_declaring_a_western_charset_but_written_in_utf8_is_read_as_utf8(tmp_path):
    path = tmp_path / "p.html"
    path.write_bytes('<meta charset="iso-8859-1"><p>公司维持买入评级。</p>'.encode())
    assert read_report(path).text == "公司维持买入评级。"
    path.write_bytes('<meta charset="utf-16"><p>算力需求持续增长。</p>'.encode())
    assert read_report(path).text == "算力需求持续增长。"


def test_a_sites_furniture_by_class_and_a_definition_lists_keys_and_values():
    page = (
        '<div class="top-nav"><ul><li>数据中心首页</li><li>研报中心</li></ul></div>'
        '<div id="breadcrumb">首页 > 研报中心</div><div class="share-bar">分享到:微博</div>'
        '<div class="article"><h1>华虹半导体:估值已充分反映,下调至持有</h1>'
        "<dl><dt>Rating</dt><dd>HOLD (from BUY)</dd><dt>Target price</dt><dd>HK$58.00</dd></dl>"
        "<p>公司三季度收入超预期。</p><div class='share-price'>现价:HK$55.40</div></div>"
        "<div class='footer'>版权所有</div>"
        "<div class='related'>海川证券:华虹半导体三季报点评 2026-08-22</div>"
        "<div id='cookie-banner'>We use cookies to improve your experience.</div>"
    )
    assert html_to_text(page).split("\n") == [
        "华虹半导体:估值已充分反映,下调至持有",
        "Rating: HOLD (from BUY)",
        "Target price: HK$58.00",
        "公司三季度收入超预期。",
        "现价:HK$55.40",  # "share-price" is no share bar
    ]
