"""Markdown from PDF-to-markdown converters (MinerU, marker): inline math read back as the PDF's figures,
HTML tables, images and links."""

import time

import pytest
from fintag.data.latex import has_math, is_converter_math
from fintag.data.markup import plain_markdown, without_bold
from fintag.data.normalize import normalize, normalize_text
from fintag.data.paragraphs import resume_cut_paragraphs
from fintag.data.reader import read_report_bytes
from fintag.data.split import segment
from fintag.serve.summary import summarize
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("同比增长 $4 4 . 4 \\%$ ；归母净利润", "同比增长44.4%;归母净利润"),
        ("公司 $2 0 2 6 \\mathrm { H } 1$ 实现营收", "公司2026H1实现营收"),
        ("毛利率约 $5 5 \\% \\sim 6 0 \\%$ 。", "毛利率约55%~60%。"),
        ("同比增长 $\\mathrm { 4 , 3 4 7 . 8 2 \\% }$", "同比增长4,347.82%"),
        ("$\\mathrm { Q } 3$ 单季", "Q3单季"),
        ("trades at $2 5 \\times$ 2027E P/E", "trades at 25× 2027E P/E"),
        ("revenue $\\mathrm { y o y } + 2 3 \\%$ in $\\mathrm { 3 Q 2 5 }$", "revenue yoy+23% in 3Q25"),
        ("growth of $3 0 \\% - 4 0 \\%$ yoy", "growth of 30%-40% yoy"),
        ("毛利率 $- 3 . 2 \\mathrm { p p t }$ ，", "毛利率-3.2ppt,"),
        ("$\\mathrm { A I ~ P C }$ shipments", "AI PC shipments"),
        ("工作温度 $8 5 ^ { \\circ } \\mathrm { C }$ 以下", "工作温度85°C以下"),
        ("( $1 2 \\%$ )", "(12%)"),
        ("营收 ${ } ^ { 1 }$ 增长", "营收增长"),  # a footnote's marker goes, as "[1]" does
        ("毛利率${ }^{2,3}$提升", "毛利率提升"),
        ("up $1 2 \\%$, and", "up 12%, and"),
        ("$\\bullet$ 研发构筑壁垒", "•研发构筑壁垒"),
        ("$\\textcircled { 1 }$ 云端训练芯片放量", "(1)云端训练芯片放量"),
        ("目标价 $\\mathrm { H K } \\$ 5 8$ ，", "目标价HK$58,"),
        ("洁净厂房约3.6万 $\\mathrm { m } ^ { 2 }$ ，", "洁净厂房约3.6万m2,"),  # as "m²" reads
    ],
)
def test_converter_math_reads_as_the_figures_the_pdf_showed(raw, expected):
    assert normalize(raw).text == expected
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "we raise our TP from US$34.00 to US$40.00",
        "revenue of US$3.30bn ± US$0.1bn",
        "from $3.2bn to $4.5bn",
        "目标价HK$88.0(前值:HK$80.0)",
        "guided $4.55-4.65 from US$4.40",
        "$\\frac { a } { b }$",  # a formula: not guessed at
        "$x _ { 1 }$",
        "$$ 2 0 2 5 $$",  # display math
        "$5$ alone",
        "$5 - $6 a share",  # a "$" before a figure closes nothing
        "EPS $1 / $2",
        "$5 ~ $6",
        "| $ | - | $ | 0.5 |",
    ],
)
def test_prose_dollars_and_real_formulas_stay_as_written(raw):
    assert not has_math(raw)
    assert normalize(raw).text == normalize_text(raw)
    assert "$" in normalize(raw).text


def test_a_currency_dollar_does_not_pair_off_the_span_after_it():
    assert normalize("costs $5 and grew $1 2 \\%$ in Q3").text == "costs $5 and grew 12% in Q3"
    assert normalize("TP of HK$ 5 8 ($2 0 \\%$ upside)").text == "TP of HK$ 5 8 (20% upside)"


def test_a_span_at_a_sentences_edge_maps_back_to_its_dollar_signs():
    raw = "$\\bullet$ 毛利率为 $3 3 . 1 \\%$"
    n = normalize(raw)
    assert n.text == "•毛利率为33.1%"
    assert n.original_span(0, len(n.text)) == (0, len(raw))


def test_what_reads_as_math():
    assert is_converter_math("2 0 2 5")
    assert is_converter_math("\\mathrm { E }")
    assert not is_converter_math("3.2bn to ")
    assert not is_converter_math("1 2 亿元")  # Chinese inside: not a converter's
    assert not is_converter_math("5")


def test_a_sentence_is_not_cut_inside_a_span_and_maps_back_to_it():
    raw = "公司前三季度实现营收 $2 5 0 . 0 5$ 亿元，同比增长 $4 4 . 4 \\%$ 。毛利率提升至 $3 3 . 1 \\%$ 。"
    sentences = segment(raw).sentences
    assert [s.text for s in sentences] == [
        "公司前三季度实现营收250.05亿元,同比增长44.4%。",
        "毛利率提升至33.1%。",
    ]
    assert sentences[0].original == raw[: raw.index("。") + 1]
    assert sentences[1].original == "毛利率提升至 $3 3 . 1 \\%$ 。"


_PIECES = st.sampled_from(
    ["$", "$$", "\\%", "\\mathrm", "\\times", "\\sim", "{", "}", "^", "_", " ", "~", "[5]", "[ 5 ]", "1", "2",
     ".", "亿", "US", "\\frac", "\\", "\n", "，", "\\$", "a"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_math_rewriting_is_idempotent_keeps_offsets_and_agrees_with_the_fast_path(text):
    n = normalize(text)
    assert normalize(n.text).text == n.text
    assert list(n.offsets) == sorted(n.offsets)
    assert all(0 <= o < len(text) for o in n.offsets)
    assert normalize_text(text) == n.text


MINERU_HEADER = (
    "# 寒武纪(688256)\n\n"
    "<table><tr><td>投资评级</td><td>买入（维持）</td></tr><tr><td>目标价</td><td>1680.00元</td></tr>"
    "<tr><td>当前股价</td><td>1320.50元</td></tr></table>\n\n"
    "# 云端训练芯片放量，盈利拐点确立\n\n"
    "![](images/3f1a2b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a.jpg)\n\n"
    "公司 $2 0 2 6 \\mathrm { H } 1$ 实现营收 $2 8 . 8 1$ 亿元，同比增长 $1 2 . 3 \\%$ 。\n\n"
    "<html><body><table><tr><td>财务指标</td><td>2025A</td><td>2026E</td></tr>"
    "<tr><td>营业收入（亿元）</td><td>64.2</td><td>98.3</td></tr></table></body></html>\n\n"
    "详见[公司公告](http://www.sse.com.cn/disclosure/a.pdf)，我们维持公司“买入”评级。\n"
)


def test_a_converters_markdown_reads_as_report_text_html_tables_as_a_pages_images_dropped_links_as_text():
    text = read_report_bytes(MINERU_HEADER.encode(), "mineru.md").text
    assert "<table" not in text and "<td>" not in text
    units = segment(text).sentences
    kinds = {s.text: s.kind for s in units}
    assert kinds["| 投资评级 | 买入(维持) |"] == "field"
    assert kinds["| 目标价 | 1680.00元 |"] == "field"
    assert kinds["公司2026H1实现营收28.81亿元,同比增长12.3%。"] == "sentence"
    assert not any("<" in s.text or "](" in s.text or "jpg" in s.text for s in units)
    assert kinds["详见公司公告,我们维持公司“买入”评级。"] == "sentence"
    tagged = [
        {
            "text": s.original,
            "text_normalized": s.text,
            "kind": s.kind,
            "sentiment": {"label": "neutral", "score": 1.0},
            "themes": {"labels": [], "scores": {}},
            "rating": {"label": "none", "score": 1.0},
        }
        for s in units
    ]
    fields = summarize(tagged)["fields"]
    assert fields["rating"]["value"] == "买入(维持)"
    assert fields["target_price"]["value"] == "1680.00元"


CUT_BY_A_FIGURE = """# 海外算力需求强劲，光模块龙头业绩再超预期

公司发布三季报，前三季度营收同比增长 $4 4 . 4 \\%$ 。

盈利能力持续提升，公司前三季度综合毛利率达到$3 9 . 6 \\%$，同比

![](images/d4c784a42a990c5f227755c2cce7200fc154639d67762fac8158c302155ed2c9.jpg)

图 3：公司单季度毛利率及净利率（%）

资料来源：Wind，华衡证券经济研究所整理

$+ 5 . 2 \\mathrm { p p t }$，主要受益于高速率产品占比提升。研发投入加码，费用率达到$1 8 . 6 \\%$，高于

# 请务必阅读正文之后的免责声明及其项下所有内容

公司研究·首次覆盖

$\\mathrm { A M A T }$、$\\mathrm { L A M }$等海外龙头$1 0 \\% \\sim 1 2 \\%$的水平。

We raise our 2025-27E adjusted net profit by 4-7%, as we now expect ad revenue to grow

# Please read the disclaimer and analyst certification at the end of this report

Qianfan Interactive (9799 HK) 18 November 2025

$2 2 \\% / 1 7 \\%$ in 2025E/26E (previously $1 9 \\% / 1 5 \\%$).
"""


def test_a_paragraph_cut_by_a_figure_or_a_pages_furniture_reads_whole():
    units = segment(read_report_bytes(CUT_BY_A_FIGURE.encode(), "mineru.md").text).sentences
    texts = [s.text for s in units]
    assert (
        "盈利能力持续提升,公司前三季度综合毛利率达到39.6%,同比+5.2ppt,主要受益于高速率产品占比提升。" in texts
    )
    assert "研发投入加码,费用率达到18.6%,高于AMAT、LAM等海外龙头10%~12%的水平。" in texts
    assert (
        "We raise our 2025-27E adjusted net profit by 4-7%, as we now expect ad revenue to grow 22%/17% in "
        "2025E/26E (previously 19%/15%)." in texts
    )
    # What stood between stays, below the joined paragraph: the caption is still a caption.
    kinds = {s.text: s.kind for s in units}
    assert kinds["图 3:公司单季度毛利率及净利率(%)"] == "heading"
    assert texts.index("图 3:公司单季度毛利率及净利率(%)") > texts.index(
        "研发投入加码,费用率达到18.6%,高于AMAT、LAM等海外龙头10%~12%的水平。"
    )


def test_a_chinese_second_half_joins_only_after_a_first_half_cut_mid_clause():
    text = (
        "公司发布三季报。\n\n我们预计随着新平台产品批量出货，公司AI服务器收入占比有望\n\n请务必阅读正文之后的免责声明\n\n"
        "图1：公司单季度营业收入\n\n进一步提升至65%以上，带动整体毛利率回升至10.5%左右。\n"
    )
    joined = "公司AI服务器收入占比有望进一步提升至65%以上，带动整体毛利率回升至10.5%左右。"
    assert joined in resume_cut_paragraphs(text)
    # A first half that ends where a heading may end stays apart from a Chinese second half: a verb, a name
    # ("华为"), a numbered heading, a question before its answer.
    for first, second in (
        ("收入占比有望", "收入占比提升"),
        ("收入占比有望", "客户包括谷歌与华为"),
        ("我们预计随着新平台产品批量出货，公司AI服务器收入占比有望", "1.2 客户结构持续优化，深度绑定谷歌的"),
        ("进一步提升至65%以上", "专家：进一步提升至65%以上"),
    ):
        apart = text.replace(first, second)
        assert resume_cut_paragraphs(apart) == apart, second


def test_bold_marks_go_in_a_markdown_file_not_in_a_text_file():
    raw = (
        "公司发布三季报。\n\n**毛利率短期承压，费用率持续摊薄。**前三季度综合毛利率为9.8%。\n\n"
        "**分析师：** 周景行 执业证书编号：S0860523070004\n"
    )
    units = {s.text: s.kind for s in segment(read_report_bytes(raw.encode(), "r.md").text).sentences}
    assert units["毛利率短期承压,费用率持续摊薄。"] == "sentence"
    assert units["前三季度综合毛利率为9.8%。"] == "sentence"
    assert [kind for text, kind in units.items() if text.startswith("分析师:")] == ["contact"]
    assert "**" in read_report_bytes(raw.encode(), "r.txt").text
    # Stars that are content stay: a significance level, a masked number or name, an unpaired mark.
    for kept in ("显著性0.05**与2.35***", "电话138****5678", "联系人王**", "**公司点评 **"):
        assert without_bold(kept) == kept


@pytest.mark.parametrize(
    "text",
    [
        # The title and the header: no sentence has ended yet.
        "订单能见度拉长至2027年，刻蚀/薄膜/量测国产化率全面提速\n\n投资要点\n\n2026年国内晶圆厂资本开支继续逆势上行，同比增长14%。\n",
        # A heading of the report's stands between.
        "公司发布三季报。\n\n盈利能力持续提升，公司前三季度综合毛利率达到39.6%，同比\n\n# 盈利预测\n\n"
        "2026年营收预计增长30%，维持买入评级。\n",
        # An analyst's line stands between.
        "公司发布三季报。\n\n盈利能力持续提升，公司前三季度综合毛利率达到39.6%，同比\n\n"
        "分析师：张明远 执业证书编号：S0980521080002\n\n2026年营收预计增长30%，维持买入评级。\n",
        # A short line alone may be a heading: no caption, source or banner stands between.
        "公司发布三季报。\n\n盈利能力持续提升，公司前三季度综合毛利率达到39.6%，同比\n\n盈利预测与投资建议\n\n"
        "+5.2ppt，主要受益于高速率产品占比提升。\n",
        # A Chinese character may open a new sentence.
        "公司发布三季报。\n\n产能与客户：泰国基地加速爬坡，第二增长曲线清晰\n\n图 1：公司营收及增速\n\n"
        "资料来源：Wind\n\n公司泰国二期工厂已于9月投产，达产后可新增年产能约300万只。\n",
        # English: a capital opens a new sentence.
        "Revenue grew 18%.\n\nWe raise our 2025-27E adjusted net profit by 4-7%, as we now expect\n\n"
        "Figure 2: Key financials\n\nCapex guidance for 2026 was kept at RMB5.0-5.5bn, mostly for GPUs.\n",
    ],
)
def test_paragraphs_are_not_joined_across_a_header_a_heading_or_a_new_sentence(text):
    assert resume_cut_paragraphs(text) == text


@pytest.mark.parametrize(
    "raw, plain",
    [
        ("详见[公司公告](http://www.sse.com.cn/a.pdf)，维持", "详见公司公告，维持"),
        ("See [Figure 3](#page-5-1) now", "See Figure 3 now"),  # marker's anchor
        ("[Wiki](https://en.wikipedia.org/wiki/Foo_(bar)) text", "Wiki text"),
        ("![](images/a(1).jpg)\n图1", "\n图1"),
        ('![chart](images/x.jpg "title")\nx', "\nx"),
        ("footnote[1](#fn1) here", "footnote here"),  # a footnote's reference goes, as "[1]" does
        ("cheap[^2] stock", "cheap stock"),
        ('# <span id="page-0-0"></span>Tencent', "# Tencent"),
        # Brackets in prose are no link.
        ("营收增速[同比](/环比)均提升", "营收增速[同比](/环比)均提升"),
        ("引用[5]和[同比]说明(见下)", "引用[5]和[同比]说明(见下)"),
        ("[^2]: the note", "[^2]: the note"),
    ],
)
def test_a_converters_links_images_notes_and_anchors(raw, plain):
    assert plain_markdown(raw) == plain


def test_a_table_inside_a_table_is_laid_out_with_it_and_hostile_brackets_cost_nothing():
    nested = "<table><tr><td>A</td><td><table><tr><td>x</td><td>y</td></tr></table></td></tr></table>"
    assert "<t" not in plain_markdown(nested) and "A" in plain_markdown(nested)
    start = time.perf_counter()
    plain_markdown("[" * 20000 + "](" + "x" * 1000)
    assert time.perf_counter() - start < 0.5
