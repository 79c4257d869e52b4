import pytest
from fintag.data.fields import field_values
from fintag.data.normalize import normalize_text
from fintag.data.split import drop_reason, segment, sentence_id, split_sentences
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import summary_of


def test_chinese_sentence_ends():
    assert split_sentences("算力需求旺盛。国产替代加速!风险提示:需求不及预期;竞争加剧?") == [
        "算力需求旺盛。",
        "国产替代加速!",
        "风险提示:需求不及预期;",
        "竞争加剧?",
    ]


def test_traditional_is_split_and_simplified_with_original_offsets():
    raw = "字節跳動大幅催化算力產業鏈。國產替代加速推進！"
    seg = segment(raw)
    assert [s.text for s in seg.sentences] == ["字节跳动大幅催化算力产业链。", "国产替代加速推进!"]
    assert [raw[s.start : s.end] for s in seg.sentences] == [
        "字節跳動大幅催化算力產業鏈。",
        "國產替代加速推進！",
    ]
    assert {s.lang for s in seg.sentences} == {"zh-Hant"}


def test_english_decimals_and_abbreviations():
    text = (
        "Sales reached 2.4 trillion yuan in the U.S. market, up 10.5% YoY. "
        "Apple Inc. and Nvidia Corp. gained. The index fell 3.2%."
    )
    assert split_sentences(text) == [
        "Sales reached 2.4 trillion yuan in the U.S. market, up 10.5% YoY.",
        "Apple Inc. and Nvidia Corp. gained.",
        "The index fell 3.2%.",
    ]


def test_bullets_and_headings_are_their_own_units():
    text = (
        "行业动向:\n1)字节跳动已跃升为世界顶级CSP\n- 国产算力产业链全面受益\n• 光模块需求旺盛。ASIC出货加速。"
    )
    seg = segment(text)
    assert [(s.text, s.kind) for s in seg.sentences] == [
        ("行业动向:", "heading"),
        ("字节跳动已跃升为世界顶级CSP", "sentence"),  # a bullet point states something
        ("国产算力产业链全面受益", "sentence"),
        ("光模块需求旺盛。", "sentence"),
        ("ASIC出货加速。", "sentence"),
    ]


def test_inline_summary_bullets():
    text = "Core Insights - The report highlights demand. - Capex guidance was raised"
    assert split_sentences(text) == ["The report highlights demand.", "Capex guidance was raised"]


def test_long_run_on_is_cut_at_commas():
    clause = "公司在数据中心领域持续加大投入并获得多个大型客户订单"
    text = ",".join([clause] * 12) + "。"
    pieces = split_sentences(text)
    assert len(pieces) > 1
    assert "".join(pieces) == text


def test_non_sentences_dropped_and_counted():
    text = "12-24 星图测控 920116 6.92\n加载中...\n收起\n光模块需求旺盛,订单饱满。"
    seg = segment(text)
    assert [s.text for s in seg.sentences] == ["光模块需求旺盛,订单饱满。"]
    assert seg.dropped["numeric"] == 1 and seg.dropped["debris"] >= 1
    assert drop_reason("2024 2025E 2026E 12.3 15.6 18.2") == "numeric"


def test_a_forecast_sentence_of_mostly_figures_is_a_statement():
    """An analyst's forecast is mostly figures but ends a sentence and has its Chinese words: kept; a table's
    row of figures, or a figure-heavy fragment without an end, is dropped."""
    forecast = "我们预计公司2026-2028年归母净利润分别为59.8/71.6/84.3亿元,同比增长19.2%/19.7%/17.7%。"
    assert drop_reason(forecast) is None
    assert drop_reason("营业收入 52.36 86.40 118.25 146.90 61.3% 65.0% 36.9% 24.2%") == "numeric"
    assert drop_reason("归母净利润分别为59.8/71.6/84.3亿元,同比增长19.2%/19.7%/17.7%") == "numeric"  # no end
    assert drop_reason("EPS为2.23/2.67/3.15元。") == "numeric"  # too few words to state anything
    assert drop_reason("3Q24营收98.6亿元,季增21.4%。") is None  # a short results line states something
    assert drop_reason("3Q24营收98.6亿元,季增21.4%") == "numeric"


def test_a_short_line_stating_a_rating_is_kept():
    """A rating line such as "Rating: BUY" has two words and no Chinese, under the length floor: kept."""
    for line in ("Rating: BUY", "Maintain Outperform.", "BUY (maintained)", "增持", "评级:中性"):
        assert drop_reason(line) is None, line
    for line in ("Buyback", "ok", "Holder:", "Selloff"):  # rating words inside other words are not ratings
        assert drop_reason(line) == "too_short", line
    seg = segment("SMIC (0981.HK)\nRating: BUY\nTarget price: HK$85.0\n")
    assert [s.text for s in seg.sentences if s.text.startswith("Rating")] == ["Rating: BUY"]


def test_other_mainland_scales_are_rating_words_too():
    """超配/标配/低配, 强推, 审慎增持 and "Market Weight" (data/GUIDELINES.md) name levels like 增持 does:
    a short line stating one is kept, and a scale definition opening with one is a disclaimer."""
    for line in ("超配(维持)", "强推", "审慎增持", "Market Weight", "Sector Perform", "AVOID"):
        assert drop_reason(line) is None, line
    for line in ("Avoidance", "Reducer"):  # inside other words: not ratings
        assert drop_reason(line) == "too_short", line
    stated = "通信行业维持“超配”评级,光模块订单饱满。"
    scale = "超配:预期未来6个月内行业指数相对基准涨幅超过10%。"
    seg = segment(f"{stated}\n\n{scale}\n")
    kinds = {s.text: s.kind for s in seg.sentences}
    assert kinds[scale] == "disclaimer"
    assert kinds[stated] == "sentence"
    # Two-word levels are matched whole: a "Sector Outperform" definition is a disclaimer, not a sentence.
    stated = "We maintain Sector Outperform on the name as AI server orders keep rising."
    scale = "Sector Outperform: the stock is expected to outperform the sector over the next 12 months."
    kinds = {s.text: s.kind for s in segment(f"{stated}\n\n{scale}\n").sentences}
    assert kinds == {stated: "sentence", scale: "disclaimer"}


def test_ids_are_stable_hashes_of_normalised_text():
    a = segment("字節跳動大幅催化算力產業鏈。").sentences[0]
    b = segment("字节跳动大幅催化算力产业链。").sentences[0]
    assert a.id == b.id == sentence_id("字节跳动大幅催化算力产业链。")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_spans_are_inside_the_original_and_ordered(text):
    seg = segment(text)
    last = 0
    for s in seg.sentences:
        assert 0 <= s.start < s.end <= len(text)
        assert s.start >= last
        last = s.end
        assert s.text and s.text == s.text.strip()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.sampled_from(["算力需求旺盛", "国产替代加速", "Robotaxi fleets grow", "风险提示"]),
        min_size=1,
        max_size=8,
    )
)
def test_sentence_content_is_preserved(parts):
    text = "。".join(parts) + "。"
    joined = "".join(split_sentences(text))
    for p in parts:
        if len(p) >= 4:
            assert p in joined


_PIECES = st.sampled_from([*"#|:：【】 01。a买入评级\n@S-", "昇腾", "免责声明", "分析师:", "\n## "])


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_by_line_gives_one_unit_per_non_empty_line_and_every_unit_a_kind(text):
    from fintag.data.normalize import normalize
    from fintag.data.split import KINDS

    units = segment(text, by_line=True).sentences
    assert [u.text for u in units] == [ln.strip() for ln in normalize(text).text.split("\n") if ln.strip()]
    assert all(u.kind in KINDS for u in units)


SMIC = "中芯国际(688981)三季报点评:产能利用率维持高位"
CAMBRICON = "Cambricon (688256 CH): AI accelerators gain share; maintain Outperform"
ETF = "ETF日报:若金价在短期出现调整,可以考虑逢低布局"
SHANZHENG = "【山證通信】周跟蹤--字節跳動大幅催化算力產業鏈"
SUB = "产能利用率维持高位,国产替代驱动成长"
GAIN = "Domestic AI accelerators gain share"


@pytest.mark.parametrize(
    ("text", "title", "index"),
    [
        (f"{SMIC}\n【投资评级】买入(维持)\n公司营收同比增长18%。", SMIC, 0),
        ("# 港股互联网的变化与机会\n## AI 加速巨头提升商业化效率\n", "港股互联网的变化与机会", 0),
        # An English title cut in two units at ";" is one title line.
        (f"{CAMBRICON}\nRating: OUTPERFORM\n", CAMBRICON, 0),
        # A short first line (a section heading, a site's tag) is not the title; the next line can be.
        (f"国产算力\n{ETF}\n市场整体情绪回暖。", ETF, 1),
        (f"  {SHANZHENG}  \n正文。", SHANZHENG, 0),
        # Text that begins with a sentence has no title, even if a title-like line follows it.
        ("AI智能总结\n节前受Deep Seek出圈影响,算力板块迎来巨震。\n行业周报:AI需求持续验证\n", None, None),
        ("投资要点\n公司营收同比增长18%。", None, None),
        ("行业动向:\n字节跳动资本开支大幅增加。", None, None),
        # A broker's page furniture is not the title, whatever its length.
        (f"证券研究报告\n{SMIC}\n正文。", SMIC, 1),
        (f"证券研究报告 | 公司点评\n{SMIC}\n正文。", SMIC, 1),
        ("核心观点与投资建议\n公司营收同比增长18%。", None, None),
        ("电子 | 证券研究报告 — 公司点评\n2025年11月10日\n" + SMIC + "\n正文。", SMIC, 2),
        # A line of the company and its code only is passed over: the title follows it.
        ("公司研究/公司点评\n证券研究报告\n中芯国际(688981.SH)\n" + SUB + "\n正文。", SUB, 3),
        ("Cambricon Technologies (688256 CH)\n" + GAIN + "\n", GAIN, 1),
        # ...the code after a space, as a PDF's first page gives it.
        ("中际旭创 300308.SZ\n" + SUB + "\n评级 买入(维持)\n", SUB, 1),
        ("腾讯控股 0700.HK\n" + SUB + "\n", SUB, 1),
        # A Chinese broker's name on its own, an English label path naming the report's kind.
        ("中信建投证券\nCHINA SECURITIES\n证券研究报告·公司深度\n海光信息(688041.SH)\n" + SUB + "\n", SUB, 3),
        (
            "Harbour Peak Securities | Equity Research\n"
            "China Internet Infrastructure | Company Update\n" + GAIN,
            GAIN,
            2,
        ),
        # Headers of broker PDFs (an analyst's test reports): labels, the broker, the report's kind, the
        # company's code line, a rating box are passed over; a line naming only the kind is the fallback.
        (
            "证券研究报告 | 公司点评\n通信 | 光模块\n2025年10月22日\n中际旭创(300308.SZ)\n"
            + SUB
            + "\n买入(维持)\n",
            SUB,
            4,
        ),
        (
            "Asia Pacific Equity Research\nHarbourview Capital Markets\n22 October 2025\n"
            "Pony AI Inc. (PONY.O)\n" + CAMBRICON + "\nRating: Overweight\n",
            CAMBRICON,
            4,
        ),
        (
            "台股研究報告|個股報告\n2025年10月17日\n台積電(2330 TT)\n" + SUB + "\n投資評等:買進(維持)\n",
            SUB,
            2,
        ),
        (
            "电子 | 证券研究报告\n行业深度报告\n电子行业深度报告:半导体材料系列之三\n" + SUB + "\n正文。",
            SUB,
            3,
        ),
        ("海光信息(688041)深度报告\n公司营收同比增长18%。", "海光信息(688041)深度报告", 0),
        # A label path with the date is page furniture, whatever its labels weigh.
        (
            "China Autos & Mobility | 21 November 2025\nWeRide Inc. (WRD.O)\n" + GAIN + "\n",
            GAIN,
            2,
        ),
        ("计算机行业2026年年度策略\n公司营收同比增长18%。", "计算机行业2026年年度策略", 0),
        # A title may exclaim; a line that runs on with a full stop is text.
        ("业绩超预期!维持买入评级\n正文。", "业绩超预期!维持买入评级", 0),
        ("公司营收同比增长18%。算力需求旺盛\n正文。", None, None),
    ],
)
def test_the_reports_title_is_its_first_line_when_that_reads_as_one(text, title, index):
    seg = segment(text)
    assert (seg.title.text if seg.title else None) == title
    assert (seg.title.index if seg.title else None) == index
    if seg.title:
        start = seg.sentences[seg.title.index].start
        # As written, where its first unit starts.
        assert text[start:].lstrip("#*_ ").startswith(seg.title.text)


def test_a_title_line_of_two_units_is_one_title_and_lines_given_one_by_one_have_none():
    text = "# Cambricon (688256 CH): AI accelerators gain share; maintain Outperform\nRating: OUTPERFORM\n"
    seg = segment(text)
    assert seg.title is not None and (seg.title.index, seg.title.units) == (0, 2)
    assert seg.title.text == "Cambricon (688256 CH): AI accelerators gain share; maintain Outperform"
    assert segment(text, by_line=True).title is None


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("目标价：118.00元", "target_price", "118.00元"),  # mostly digits: dropped as "numeric" before
        ("2025年10月22日", "date", "2025年10月22日"),  # a date alone is the header's date
        ("22 October 2025", "date", "22 October 2025"),
        ("目标价 286.00元", "target_price", "286.00元"),  # key and value apart by a space
        ("总市值 5,549.6亿元", "market_value", "5,549.6亿元"),
        # The normaliser joins these two into "投资评级增持(首次)".
        ("投资评级 增持（首次）", "rating", "增持(首次)"),
        ("行业评级 强于大市（维持）", "industry_rating", "强于大市(维持)"),
    ],
)
def test_header_field_lines_are_kept_and_read(line, key, value):
    from fintag.data.fields import field_value

    (unit,) = segment(line).sentences
    assert unit.kind == "field" and field_value(unit.text) == (key, value)


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        # Several fields on one line, run together by the normaliser ("买入上次评级:买入...").
        (
            "评级：买入  上次评级：买入  目标价：168.00元",
            [("rating", "买入"), ("previous_rating", "买入"), ("target_price", "168.00元")],
        ),
        (
            "**评级：中性（维持）**  |  **目标价：58.00元**  |  **现价：55.62元**",
            [("rating", "中性(维持)"), ("target_price", "58.00元"), ("price", "55.62元")],
        ),
        # A key inside brackets is part of the value; "prev." does not end the field.
        ("目标价:52.00元(前次目标价:75.00元)", [("target_price", "52.00元(前次目标价:75.00元)")]),
        ("Target Price: RMB 78.00 (prev. RMB 66.00)", [("target_price", "RMB 78.00 (prev. RMB 66.00)")]),
        ("目标估值：420.00元", [("target_price", "420.00元")]),
        # A key inside a longer word is no cut: a previous target stays in the value, "Update" is no date.
        (
            "评级:买入  目标股价:128元  最新收盘价:98.5元",
            [("rating", "买入"), ("target_price", "128元"), ("price", "98.5元")],
        ),
        ("【投资评级】:买入(维持)【目标价】:128元", [("rating", "买入(维持)"), ("target_price", "128元")]),
        ("Rating: BUY  Update: 21 Nov", [("rating", "BUY Update: 21 Nov")]),
        # A table's row as a PDF gives it: keys and values in columns, no colons; the normaliser runs the
        # Chinese cells together ("231.50元总市值").
        (
            "投资评级        买入（维持）        目标价        286.00元",
            [("rating", "买入(维持)"), ("target_price", "286.00元")],
        ),
        (
            "当前股价        231.50元            总市值        277亿元",
            [("price", "231.50元"), ("market_value", "277亿元")],
        ),
        (
            "Rating          OVERWEIGHT          Target price    HK$45.60",
            [("rating", "OVERWEIGHT"), ("target_price", "HK$45.60")],
        ),
        ("2025年11月18日 星期二", [("date", "2025年11月18日星期二")]),
        # Cells apart by "|", a bare rating level and a bare date among them.
        (
            "买入(维持) | 目标价:62.3元 | 当前价:48.15元 | 2026年11月28日",
            [
                ("rating", "买入(维持)"),
                ("target_price", "62.3元"),
                ("price", "48.15元"),
                ("date", "2026年11月28日"),
            ],
        ),
        ("6个月评级         增持（下调评级）", [("rating", "增持(下调评级)")]),
        # Keys in 【】 with no colon, each value run on to the next key.
        (
            "【投资评级】审慎推荐（维持）【目标价】148.00元【当前价】121.60元【报告日期】2026/11/28",
            [
                ("rating", "审慎推荐(维持)"),
                ("target_price", "148.00元"),
                ("price", "121.60元"),
                ("date", "2026/11/28"),
            ],
        ),
        # A markdown or web page's table of keys and values: each row its fields; a price's key with its day.
        ("| 投资评级 | 弱于大市（维持） |", [("rating", "弱于大市(维持)")]),
        (
            "| 收盘价（2026/11/20） | 27.84元 | 总市值 | 110.6亿元 |",
            [("price", "27.84元"), ("market_value", "110.6亿元")],
        ),
        # A unit or currency in the key's bracket goes with a bare figure; a day in it does not.
        ("总市值（亿元） 792", [("market_value", "792亿元")]),
        ("| 目标价（港元） | 86.00 |", [("target_price", "86.00港元")]),
        ("目标价（人民币）：96.00元", [("target_price", "96.00元")]),
        ("Target price (US$): 14.50", [("target_price", "US$14.50")]),
        ("收盘价（2026/11/20） 48.15", [("price", "48.15")]),
        (
            "总市值（亿元）：792.5  流通市值（亿元）：600",
            [("market_value", "792.5亿元"), ("market_value", "600亿元")],
        ),
    ],
)
def test_a_header_line_of_several_fields_gives_each(line, fields):
    from fintag.data.fields import field_values

    (unit,) = segment(line).sentences
    assert unit.kind == "field" and field_values(unit.text) == fields


@pytest.mark.parametrize(
    "line",
    [
        "评级买入,目标价35元,对应2026年30倍PE。",
        "目标价上调至35元 对应市值 400亿元,维持买入评级。",
        "股价 回调后估值已处于历史低位,我们认为当前是较好的配置时点。",
    ],
)
def test_a_sentence_that_starts_with_a_key_is_not_cut_into_fields(line):
    from fintag.data.fields import field_values

    (unit,) = segment(line).sentences
    assert unit.kind == "sentence" and field_values(unit.text) == []
    assert field_values("买入 | 光模块龙头业绩超预期") == []  # a cell neither a field nor a rating level
    # A table's row of keys with no values, or of a company's figures, is no field.
    assert field_values("| 投资评级 | 目标价 |") == field_values("| 营业收入 | 358.1 |") == []
    assert field_values("| 项目 | 内容 |") == []


def test_a_header_lines_date_may_have_a_two_digit_year():
    from fintag.data.fields import date_in

    assert date_in("证券研究报告 | 公司点评报告 | 26年11月26日") == "26年11月26日"
    assert date_in("发布于2026年11月26日") == "2026年11月26日"  # never the last two digits of a year
    summary, _ = summary_of(
        "证券研究报告 | 公司点评报告 | 26年11月26日\n兆易创新:利基DRAM涨价周期开启\n公司业绩超预期。"
    )
    assert summary["fields"]["date"]["value"] == "26年11月26日"


def test_a_brokers_name_and_date_apart_by_a_colon_is_no_title():
    header = "中金公司研究部：2026年11月27日\n公司研究 | 点评 | 港股\n"
    seg = segment(header + "3Q26业绩超预期，先进制程产能利用率维持满载\n公司三季度收入超预期。")
    assert seg.title is not None and seg.title.text == "3Q26业绩超预期，先进制程产能利用率维持满载"


@pytest.mark.parametrize(
    "line",
    [
        "当前位置：首页 > 研报中心 > 个股研报 > 正文",
        "字号：大 中 小  分享到：",
        "登录  注册  下载APP",
        "上一篇：均胜电子(600699)：汽车安全业务盈利修复",
        "（文章来源：XX证券）",
        "（編輯：林宏達）",
    ],
)
def test_a_web_pages_navigation_is_debris(line):
    seg = segment(f"{line}\n光模块需求旺盛,订单饱满。")
    assert [s.text for s in seg.sentences] == ["光模块需求旺盛,订单饱满。"] and seg.dropped["debris"] == 1


@pytest.mark.parametrize(
    ("line", "digest"),
    [
        ("晨会纪要", True),
        ("证券研究报告 | 晨会纪要", True),
        ("XX证券晨会纪要(2025.11.18)", True),
        ("每日晨报 2025年11月18日 星期二", True),
        ("Morning Call", True),
        ("晨会纪要 第215期", True),
        ("晨会纪要(2025年11月20日 星期四)", True),
        ("晨会纪要——2025年11月20日", True),
        ("Morning Call 20 November 2025", True),
        ("晨会集萃", True),
        ("每日早参", True),
        ("晨会点评:中际旭创Q3业绩超预期,维持买入评级", False),
        ("Morning Call: Tencent results beat", False),
        ("公司在晨会上宣布扩产计划", False),
    ],
)
def test_a_digests_name_is_the_line_or_a_label_of_it(line, digest):
    from fintag.data.split import names_a_digest

    assert names_a_digest(normalize_text(line)) is digest


def test_a_line_of_many_fields_is_read_in_linear_time():
    import time

    from fintag.data.fields import field_values

    assert ("target_price", "75元") not in field_values("评级:买入前次目标价:75元")
    timings = []
    for n in (2_000, 16_000):
        start = time.perf_counter()
        segment("评级:买入 " * n)
        timings.append(time.perf_counter() - start)
    assert timings[1] < 20 * timings[0] + 0.5  # 8x the input: quadratic would be 64x


def test_a_morning_notes_name_is_its_title():
    """A digest's name is its title, however short, before the first item's headline."""
    text = "XX证券研究所\n证券研究报告 | 晨会纪要\n2025年11月18日 星期二\n晨会纪要\n"
    text += "今日重点推荐：金山办公、如祺出行\n"
    seg = segment(text)
    assert seg.title is not None and (seg.title.text, seg.title.index) == ("晨会纪要", 3)
    assert [s.kind for s in seg.sentences][2] == "field"


def test_a_rating_key_run_into_a_statement_is_not_a_field():
    from fintag.data.fields import field_value

    assert field_value("投资评级调整为买入,理由是估值回落") is None
    assert field_value("股价表现强于大市") is None


def test_yaml_front_matter_gives_the_title_and_header_fields_and_drops_the_rest():
    """A markdown report saved with YAML front matter: its title is the report's title (without the key and
    the quotes), its date, rating and target price are header fields, its other keys are not sentences."""
    text = (
        "---\n"
        'title: "寒武纪(688256.SH)深度报告:云端训练芯片放量,国产算力核心标的"\n'
        "publish_date: 2025-11-12\n"
        "broker: 某某证券研究所\n"
        "rating: 买入(首次)\n"
        "target_price: 1680.00\n"
        "tags: [算力, 国产替代]\n"
        "authors:\n  - 张三\n"
        "---\n\n"
        "# 寒武纪(688256.SH)深度报告:云端训练芯片放量,国产算力核心标的\n\n"
        "思元590系列在头部互联网客户的训练集群中实现规模部署,公司营收同比增长超过40倍。\n"
    )
    seg = segment(text)
    title = "寒武纪(688256.SH)深度报告:云端训练芯片放量,国产算力核心标的"
    assert seg.title is not None and seg.title.text == title
    assert [(s.kind, s.text) for s in seg.sentences[:4]] == [
        ("heading", seg.title.text),
        ("field", "publish_date: 2025-11-12"),
        ("field", "rating: 买入(首次)"),
        ("field", "target_price: 1680.00"),
    ]
    assert seg.dropped["front_matter"] == 6  # the two fences, broker, tags, authors and the author
    assert text[seg.sentences[0].start : seg.sentences[0].end] == seg.title.text  # offsets of the value
    assert [s.kind for s in seg.sentences[4:]] == ["sentence", "sentence"]


def test_a_rule_line_and_prose_are_no_front_matter():
    seg = segment("---\n公司三季度净利润同比增长125%,超出市场预期。\n---\n")
    assert seg.dropped["front_matter"] == 0 and [s.kind for s in seg.sentences] == ["sentence"]


def test_front_matter_lines_are_never_joined_and_do_not_count_in_the_widths():
    body = (
        "公司发布三季报,前三季度实现营业收入45.62亿元,同比增长23.5%,归母净利润6.81亿元,同比增长13.5%,"
        "扣非归母净利润6.02亿元,同比增长41.2%。其中第三季度单季实现营收17.33亿元,环比增长12.7%,毛利率为"
        "38.6%,同比提升2.4个百分点,我们认为主要受益于高端产品占比提升以及原材料价格回落。"
    ) * 3
    lines = [body[i : i + 34] for i in range(0, len(body), 34)]
    title = "中际旭创深度报告光模块龙头地位稳固一点六T放量在即盈利能力持续提升维持买入评级"
    front = f"---\ntitle: {title}\nbroker: 某某证券研究所上海分公司研究部\ndate: 2025-11-12\n---\n"
    seg = segment(front + "\n".join(lines) + "\n")
    assert seg.title is not None and seg.title.text == title
    sentences = [s.text for s in seg.sentences if s.kind == "sentence"]
    assert sentences[:3] == [s + "。" for s in body.split("。")[:3]]  # the body unwrapped whole


def test_a_related_reports_title_cut_by_a_narrow_sidebar_is_one_heading_with_its_date():
    text = (
        "相关研究\n《中际旭创(300308):800G龙头地位稳\n固,1.6T蓄势待发》2025-08-26\n"
        "《半导体设备行业深度:存储扩产周\n期重启,国产设备迎来新一轮订单》\n2025-07-30\n"
        "公司三季度净利润同比增长125%,超出市场预期。\n"
    )
    units = [(s.kind, s.text) for s in segment(text).sentences]
    assert ("heading", "《中际旭创(300308):800G龙头地位稳固,1.6T蓄势待发》2025-08-26") in units
    assert ("heading", "《半导体设备行业深度:存储扩产周期重启,国产设备迎来新一轮订单》2025-07-30") in units
    assert not any(kind == "field" for kind, _ in units)  # another report's date is not the report's
    # A date after a double dash ("——"), as a web page's related research writes it.
    dashed = [
        (s.kind, s.text) for s in segment("《自动驾驶专题-L4从技术验证到商业验证》 ——2026-03-02\n").sentences
    ]
    assert dashed == [("heading", "《自动驾驶专题-L4从技术验证到商业验证》 ——2026-03-02")]


def test_rows_of_a_table_of_companies_are_table_rows_and_a_single_header_line_is_not():
    pool = (
        "本周金股组合\n"
        "中际旭创（300308.SZ）  买入   通信\n"
        "小马智行-W（02026.HK） 增持   汽车\n"
        "招商银行（600036.SH）  增持   银行\n"
        "我们维持对科技成长板块的超配建议。\n"
    )
    kinds = [s.kind for s in segment(pool).sentences]
    assert kinds == ["heading", "table_row", "table_row", "table_row", "sentence"]
    # One line of the company, its rating and its price is the report's own header, not a table.
    header = "中际旭创（300308.SZ）    买入（维持）    目标价:150元\n公司三季度净利润同比增长125%。\n"
    assert segment(header).sentences[0].kind != "table_row"


def test_a_pdf_sidebar_before_the_title_gives_its_fields_and_the_title_is_still_found():
    """pypdf may give a first page's sidebar before the title: its cells one a line (a key, then its value),
    the previous target price, analysts, related research; the title is found after them."""
    text = (
        "海川证券 · 公司研究 · 家用电器\n2025年10月29日\n评级：\n中性（下调）\n上次评级： 买入\n"
        "目标价格：\n158.00元\n"
        "前次目标价： 245.00元\n最新收盘价： 171.35元\n总市值： 316.6亿元\n分析师\n孙韬\n"
        "SAC执业证书编号：S0570519040002\n相关研究\n《石头科技：海外高增，洗地机份额\n提升》2025-08-18\n"
        "证券研究报告 | 季报点评\n石头科技（688169.SH）\n价格战侵蚀盈利，下调至“中性”评级\n"
        "公司三季度营收同比下降12.4%,价格战导致毛利率承压。\n"
    )
    seg = segment(text)
    assert seg.title is not None and seg.title.text == "价格战侵蚀盈利，下调至“中性”评级"
    fields = dict(f for s in seg.sentences if s.kind == "field" for f in field_values(s.text))
    assert fields["rating"] == "中性(下调)" and fields["target_price"] == "158.00元"
    assert fields["previous_target_price"] == "245.00元" and fields["previous_rating"] == "买入"


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "投资评级 上次评级 目标价 当前股价 52周区间 总市值\n"
            "买入（上调） 增持 156.00元 121.37元 58.20-139.90元 651.4亿元\n",
            [
                ("rating", "买入(上调)"),
                ("previous_rating", "增持"),
                ("target_price", "156.00元"),
                ("price", "121.37元"),
                ("market_value", "651.4亿元"),
            ],
        ),
        (
            "Rating  Target price  Share price  Market cap\nBUY  US$14.50  US$11.20  US$3.2bn\n",
            [
                ("rating", "BUY"),
                ("target_price", "US$14.50"),
                ("price", "US$11.20"),
                ("market_value", "US$3.2bn"),
            ],
        ),
        (
            "评级 目标价(港元) 总股本\n增持 86.00 14.63亿股\n",
            [("rating", "增持"), ("target_price", "86.00港元")],
        ),
        # Levels the normaliser runs together ("买入 增持" reads "买入增持"); a unit apart from its figure.
        (
            "投资评级 上次评级 目标价 当前股价\n买入 增持 156.00 元 121.37元\n",
            [
                ("rating", "买入"),
                ("previous_rating", "增持"),
                ("target_price", "156.00 元"),
                ("price", "121.37元"),
            ],
        ),
    ],
)
def test_a_banner_of_keys_over_their_values_is_one_line_of_fields(text, fields):
    """A first page's banner: a line of keys, the next their values in the same order, apart by spaces. One
    unit of fields that points at both lines as written."""
    (unit,) = segment(text).sentences
    assert unit.kind == "field" and field_values(unit.text) == fields
    assert unit.original == text.rstrip("\n")


@pytest.mark.parametrize(
    "text",
    [
        "投资评级 目标价 当前股价\n买入 156.00元\n",  # a value missing: which is which is not known
        "投资评级 目标价 当前股价\n说明 156.00元 121.37元\n",  # a rating's value must be a level
        "会计年度 2025A 2026E 2027E\n营业收入 2,915 4,526 6,380\n",  # a forecast table
        "总股本 52周区间 日均成交\n14.63亿股 58.20-139.90元 3.2亿元\n",  # market data alone: no field
        "目标价 当前股价 近期股价表现良好\n156.00元 121.37元 上涨\n",  # a key line with a statement in it
    ],
)
def test_what_is_no_banner_of_fields(text):
    assert all(s.kind != "field" or len(field_values(s.text)) <= 1 for s in segment(text).sentences)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        # A rating history's rows and a line of levels are no header fields.
        ("| 2024-04-30 | 增持 |\n| 增持 | 2024-04-30 |\n买入 | 增持 | 中性 | 减持\n", None),
        # Full sentences after a company's code, in columns, are sentences, not a table of companies.
        (
            "中际旭创(300308.SZ)  三季度业绩超预期，1.6T放量在即  维持买入评级。\n"
            "新易盛(300502.SZ)  海外客户份额提升，盈利能力改善  维持买入评级。\n",
            ["sentence", "sentence"],
        ),
        # A verb among Taiwan's levels is no rating scale; an analyst who certifies nothing, no certification.
        ("加码未来成长，公司拟定增募资50亿元投向1.6T光模块产能。", ["sentence"]),
        ("Our analysts expect the FDA to certify the device in 2H26, opening the US market.", ["sentence"]),
        # A title in 《》 inside a sentence's line keeps the date after it a date.
        ("点评《关于深入实施“人工智能+”行动的意见》\n2025年8月27日\n", ["heading", "field"]),
    ],
)
def test_the_reviews_false_positives_stay_what_they_are(text, kinds):
    units = segment(text).sentences
    assert not any(s.kind == "field" for s in units) if kinds is None else [s.kind for s in units] == kinds


def test_markdown_between_two_rules_is_no_front_matter_and_a_block_scalar_is():
    rules = "---\n# Cambricon (688256.SH): Strong 3Q; maintain Outperform\nRating: Outperform\n---\n正文。\n"
    seg = segment(rules)
    assert seg.dropped["front_matter"] == 0
    assert seg.title is not None and seg.title.text.startswith("Cambricon")
    block = "---\ntitle: 寒武纪:业绩拐点确立\nsummary: |\n  云端芯片放量。\ntags: [AI]\n---\n业绩增长。\n"
    seg = segment(block)
    assert seg.title is not None and seg.title.text == "寒武纪:业绩拐点确立"
    assert [s.kind for s in seg.sentences] == ["heading", "sentence"]


def test_a_page_of_a_few_headlines_is_not_unwrapped_on_its_own():
    body = "公司发布三季报,前三季度实现营业收入45.62亿元,同比增长23.5%,归母净利润6.81亿元,同比增长13.5%。" * 6
    page = "\n".join(body[i : i + 34] for i in range(0, len(body), 34))
    heads = [
        "中际旭创:三季度业绩超预期,1.6T放量在即",
        "新易盛:海外客户份额提升,盈利能力改善",
        "天孚通信:光引擎放量叠加CPO布局",
    ]
    alone = len(segment(page).sentences)
    assert len(segment(page + "\f" + "\n".join(heads)).sentences) == alone + len(heads)


def test_a_sidebars_market_data_chart_labels_and_analysts_are_passed_over_for_the_title():
    sidebar = [
        "强烈推荐（维持）",
        "总股本 7.09亿股",
        "52周区间 61.20-195.80元",
        "主要股东 浪潮集团",
        "股价相对走势",
        "Nov-25 May-26 Nov-26",
        "研究助理 顾安然",
        "Daniel Koh, CFA",
        "證監會中央編號：BQK218",
        "敬请阅读末页的重要说明 1",
    ]
    seg = segment(
        "\n".join(
            [
                *sidebar,
                "浪潮信息(000977.SZ)",
                "AI服务器订单饱满，液冷整机柜放量在即",
                "公司三季度收入超预期。",
            ]
        )
    )
    assert seg.title is not None and seg.title.text == "AI服务器订单饱满，液冷整机柜放量在即"
    kinds = {s.text: s.kind for s in seg.sentences}
    assert kinds["强烈推荐(维持)"] == "field" and kinds["敬请阅读末页的重要说明 1"] == "disclaimer"
    assert [kinds[k] for k in ("研究助理顾安然", "Daniel Koh, CFA", "证监会中央编号:BQK218")] == [
        "contact"
    ] * 3
    assert (
        "ROE持续改善，估值修复空间较大"
        == segment("ROE持续改善，估值修复空间较大\n公司业绩超预期。").title.text
    )


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("强烈推荐（维持）", [("rating", "强烈推荐(维持)")]),  # a sidebar's rating without its key
        ("Overweight (maintained)", [("rating", "Overweight (maintained)")]),
        ("买入", []),  # a bare level: a table's cell as often as a rating
        # Market data that are no field end the fields before them.
        (
            "总市值：898.7亿元 总股本：14.63亿股 报告日期：2026年11月20日",
            [("market_value", "898.7亿元"), ("date", "2026年11月20日")],
        ),
    ],
)
def test_a_rating_with_its_action_is_a_field_and_market_data_end_a_field(line, fields):
    assert field_values(normalize_text(line)) == fields


def test_header_lines_at_the_column_width_do_not_run_into_each_other_or_the_body():
    """A two-column PDF's header lines are as wide as its column: a line of fields or an analyst's line
    does not run on, and a title cut inside its quotes is one title."""
    body = [
        "国内智算服务器龙头，深度受益国产算力集群建设。公司是国内高",
        "性能计算与智算服务器的龙头厂商，2025年智算相关收入占比已提",
        "升至58.6%，在国产AI芯片服务器市场的份额约为31.4%，位居行业",
        "第一。我们预计公司液冷业务收入将达到42.35亿元，同比增长86",
    ] * 3
    header = [
        "国产算力芯片行业深度：从“能用”到“好",
        "用”，生态拐点渐近",
        "投资评级：谨慎推荐（首次） 目标价：78.00元 当前股价：61.42",
        "总市值：898.7亿元 总股本：14.63亿股 报告日期：2026年11月2",
        "分析师：沈嘉言  执业证书编号：S0190519100003  shenjy@bc.com",
    ]
    seg = segment("\n".join([*header, *body, "%。"]))
    assert seg.title is not None and seg.title.text == "国产算力芯片行业深度：从“能用”到“好用”，生态拐点渐近"
    assert (
        seg.sentences[0].text == "国产算力芯片行业深度:从“能用”到“好用”,生态拐点渐近" and seg.title.units == 1
    )
    kinds = [(s.kind, s.text[:4]) for s in seg.sentences[seg.title.units :]]
    assert kinds[:3] == [("field", "投资评级"), ("field", "总市值:"), ("contact", "分析师:")]
    assert seg.sentences[seg.title.units + 3].text == "国内智算服务器龙头,深度受益国产算力集群建设。"


def test_a_line_left_inside_its_quotes_runs_on_only_into_a_short_line_that_closes_them():
    """One paragraph a line: a line that opens a quote it does not close runs on into the next only when that
    line is short and closes it (a title cut at a narrow column), never into a paragraph."""
    assert split_sentences("公司称为“算力\n底座”的新平台\n") == ["公司称为“算力底座”的新平台"]
    paragraph = "”这一判断我们认为仍然成立,国产算力芯片的生态建设正在加速,多家厂商的软件栈已可兼容主流框架。"
    assert split_sentences("管理层提出“国产算力三年倍增\n" + paragraph + "\n") == [
        "管理层提出“国产算力三年倍增",
        paragraph,
    ]
    assert split_sentences("公司称为“算力。\n底座”的新平台\n") == ["公司称为“算力。", "底座”的新平台"]


def test_a_paragraph_wrapped_after_a_key_runs_on_and_is_no_field():
    """A first-page column beside a sidebar is narrow: "投资建议:" opens a paragraph wrapped at the column,
    whose first line alone reads like a field; only a line of fields whose values end whole stops there."""
    lines = [
        "公司发布三季报,前三季度实现营收128.6亿元,同比增长",
        "35.2%,归母净利润21.4亿元,同比增长41.8%,超出我们",
        "此前预期。数据中心业务收入同比增长62%,占比提升至",
        "38%,海外客户拓展顺利,北美两家云厂商完成认证并开",
        "始小批量供货,我们预计明年海外收入占比将超过三成。",
        "投资建议:我们预计公司2025-2027年归母净利润分别为25.6/",
        "33.8/42.1亿元,对应PE分别为28/21/17倍,维持买入评",
        "级。",
    ]
    summary, units = summary_of("\n".join(lines))
    assert "rating" not in summary["fields"]
    assert any(
        u["text_normalized"].startswith("投资建议:我们预计")
        and u["text_normalized"].endswith("维持买入评级。")
        for u in units
    )


def test_titles_that_start_with_a_market_data_word_are_found():
    for title in (
        "ROE拐点已至 盈利能力持续改善",
        "大股东增持:彰显长期发展信心",
        "市盈率处于历史低位 配置价值凸显",
    ):
        seg = segment(f"{title}\n公司三季度业绩超预期,维持买入评级。")
        assert seg.title is not None and seg.title.text == title


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("| 投资评级 | 说明 |", []),  # a rating definitions table's header
        ("| Rating | Definition |", []),
        ("| 投资评级 | 买入(维持) | 52周区间 | 58.20-139.90元 |", [("rating", "买入(维持)")]),
        ("强于大市（维持）", []),  # an industry's level without its key: whose rating is it?
        ("大股东:控股股东增持彰显信心,评级:维持买入", []),  # market data before a clause: a sentence
        ("Net debt: falls to RMB2bn by 2026E, Target price: HK$50", []),
    ],
)
def test_what_is_not_a_header_field(line, fields):
    assert field_values(normalize_text(line)) == fields


def test_a_run_on_word_after_a_full_stop_opens_no_legal_section():
    body = (
        "公司治理结构持续完善,董事会运作规范,内控体系健全,经营效率提升。信息披露\n"
        "义务履行到位,投资者关系管理获得交易所好评,我们认为公司治理溢价有望逐步体\n"
        "现在估值之中,维持买入评级,目标价对应2026年25倍市盈率,上行空间约三成左右\n"
    ) * 4
    kinds = {s.kind for s in segment(body).sentences}
    assert "disclaimer" not in kinds
    assert any("信息披露义务履行到位" in s.text for s in segment(body).sentences)


def test_an_analysts_name_is_a_contact_but_analysts_words_are_not():
    kinds = {
        line: segment(line).sentences[0].kind
        for line in ("研究助理 顾安然", "分析师一致预期", "分析师会议纪要")
    }
    assert kinds == {"研究助理 顾安然": "contact", "分析师一致预期": "heading", "分析师会议纪要": "heading"}


def test_a_pages_breadcrumb_tags_and_a_sidebar_charts_source_are_no_title():
    for furniture in (
        "首页 > 研报中心 > 个股研报 > 正文",
        "公司点评 消费电子 A股",
        "资料来源：Wind，东岳证券研究所",
    ):
        seg = segment(f"{furniture}\nAI服务器铜连接与液冷放量，汽车业务扭亏在即\n公司三季度收入超预期。")
        assert seg.title is not None and seg.title.text == "AI服务器铜连接与液冷放量，汽车业务扭亏在即", (
            furniture
        )


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("2026年11月28日 07:45 上海", [("date", "2026年11月28日")]),  # a WeChat byline
        ("Share price (25 Nov 2026): HK$55.40", [("price", "HK$55.40")]),
        ("| 當前股價 | 14.36港元 | 潛在升幅 | 29.5% |", [("price", "14.36港元")]),  # upside: market data
    ],
)
def test_a_bylines_date_a_share_price_and_an_upside(line, fields):
    assert field_values(normalize_text(line)) == fields


def test_a_datum_of_market_data_is_a_unit_of_the_header_and_no_field_of_the_summary():
    """Market data on a line of its own ("总股本:44.03亿股", "52周最高/最低:312.80/188.60元", "Free float:
    71%") are kept whatever their digits, as the header's units, not sentences; a statement after such a key
    stays a sentence."""
    text = "总股本: 44.03亿股\n52周最高/最低: 312.80/188.60元\nFree float: 71%\n主要股东: 联想控股(31.5%)\n"
    units = segment(text + "市盈率:当前估值处于近五年的历史低位,安全边际充足。\n").sentences
    assert [s.kind for s in units] == ["field"] * 4 + ["sentence"]
    assert all(field_values(s.text) == [] for s in units)
    # A statement after a market datum's key is no datum; a line after an open bracket that opens a unit of
    # its own (a field, a heading) is not run into it.
    for statement in ("大股东:拟减持(不超过2%)", "上涨空间:较现价仍有35%", "换手率:近一个月明显回升至3.5%"):
        assert [s.kind for s in segment(statement + "\n").sentences] == ["sentence"]
    kinds = [(s.kind, s.text) for s in segment("本次发行价格(以公告为准\n目标价:128元)\n").sentences]
    assert kinds == [("heading", "本次发行价格(以公告为准"), ("field", "目标价:128元)")]
    summary, _ = summary_of(text + "目标价:98.00元\n")
    assert {k: v["value"] for k, v in summary["fields"].items()} == {"target_price": "98.00元"}


def test_a_rating_history_is_no_banner():
    """A table's header over rows of values (a rating history) is no banner, nor one row of it far down."""
    text = "公司评级历史\n日期 评级 目标价\n2024-05-10 增持 98.00元\n2024-11-02 买入 120.00元\n"
    assert all(s.kind != "field" for s in segment(text).sentences)
    body = "".join(f"第{n}段:公司订单饱满,盈利能力持续提升。\n" for n in range(40))
    one_row = body + "公司评级历史\n日期 评级 目标价\n2024-05-10 增持 98.00元\n"
    assert all(s.kind != "field" for s in segment(one_row).sentences)
    assert any(
        s.kind == "field" for s in segment("日期 评级 目标价\n2024-05-10 增持 98.00元\n" + body).sentences
    )


@pytest.mark.parametrize(
    "row, fields",
    [
        # A converter's table: the rating in one cell beside an empty one.
        ("| 投资评级:增持(首次覆盖) |", [("rating", "增持(首次覆盖)")]),
        ("| 投资评级:买入 | 目标价:98.00元 |", [("rating", "买入"), ("target_price", "98.00元")]),
        ("| Rating | Outperform (Maintained) |", [("rating", "Outperform (Maintained)")]),
        ("| Market cap | HK$201.4bn / US$25.9bn |", [("market_value", "HK$201.4bn / US$25.9bn")]),
        ("| 投资评级:买入(维持) | 2025年10月28日 |", [("rating", "买入(维持)"), ("date", "2025年10月28日")]),
        # A value ends where the next cell starts, and a scale's row is no field.
        ("Market cap: US$8.7bn | 3M ADTV: US$61m", [("market_value", "US$8.7bn")]),
        ("投资评级:买入(维持) | 2025年10月28日 | 公司点评", [("rating", "买入(维持)")]),
        ("| 买入 | 预计未来6个月内股价涨幅超过20% |", []),
        ("| 投资评级:买入 | 说明 |", []),
        ("| Rating | Buy (upside > 15%) |", []),
        ("| 行业评级 | 看好(强于大市10%以上) |", []),
    ],
)
def test_rows_of_fields_in_cells(row, fields):
    assert field_values(row) == fields
