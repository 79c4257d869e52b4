"""What a new user meets first: the command line, its help and errors, the output fields, kinds and resume.

Each test here pins one finding of issue 14; each failed on the code before the fix."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fintag.cli.commands import COMMANDS
from fintag.cli.main import main
from fintag.data.fields import field_key
from fintag.data.normalize import normalize_text
from fintag.data.reader import read_report
from fintag.data.split import KINDS, SUMMARY_KIND, segment
from fintag.serve.batch import tag_main
from fintag.serve.summary import summarize

from tests.conftest import summary_of

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"
HEAVY = ("torch", "transformers", "sklearn", "fastapi", "datasets", "accelerate")


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _tag(*args: str | Path) -> int:
    return tag_main([str(a) for a in args])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------- the text as written


def test_text_is_the_original_and_the_normalised_form_has_its_own_field(tagger):
    report = "华为昇腾910C性能可达H100的60%。\n字節跳動大幅催化算力產業鏈，需求持續驗證。\n"
    result = tagger.tag_report(report)
    texts = [(s["text"], s["text_normalized"]) for s in result["sentences"]]
    assert texts == [
        ("华为昇腾910C性能可达H100的60%。", "华为昇腾910C性能可达H100的60%。"),
        ("字節跳動大幅催化算力產業鏈，需求持續驗證。", "字节跳动大幅催化算力产业链,需求持续验证。"),
    ]
    for s in result["sentences"]:
        assert report[s["start"] : s["end"]] == s["text"]


def test_tag_writes_original_text_in_jsonl_and_csv(tmp_path, tiny_checkpoint_dir):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "r.txt").write_text(
        "投資評級：買入（維持）。\n华为昇腾910C出货加速。\n", encoding="utf-8"
    )
    assert _tag(tmp_path / "in", "--model", tiny_checkpoint_dir, "--out", tmp_path / "t.jsonl") == 0
    rows = [r for r in _jsonl(tmp_path / "t.jsonl") if r["type"] == "sentence"]
    assert [r["text"] for r in rows] == ["投資評級：買入（維持）。", "华为昇腾910C出货加速。"]
    assert [r["text_normalized"] for r in rows] == ["投资评级:买入(维持)。", "华为昇腾910C出货加速。"]
    assert _tag(tmp_path / "in", "--model", tiny_checkpoint_dir, "--out", tmp_path / "t.csv") == 0
    table = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text(encoding="utf-8-sig"))))
    assert [r["text"] for r in table if r["type"] == "sentence"] == [r["text"] for r in rows]


# ---------------------------------------------------------------- kinds


def _kinds(path: Path) -> dict[str, str]:
    return {s.text: s.kind for s in segment(read_report(path).text).sentences}


def test_seed_report_non_sentences_get_their_kind():
    guosen = _kinds(CORPUS / "003_79c94fc73134dc31.txt")
    assert guosen["投资评级:优于大市(维持)"] == "field"  # the report's own rating, a header field
    assert guosen["zhanglunke@guosen.com.cn"] == "contact"
    assert guosen["证券分析师:张伦可"] == "contact"
    assert guosen["深圳市福田区福华一路125号国信金融大厦36层"] == "contact"
    # The rating scale, its table rows and the legal notices after "## 国信证券投资评级".
    assert guosen["股票投资评级优于大市股价表现优于市场代表性指数10%以上"] == "disclaimer"
    assert guosen["中性股价表现介于市场代表性指数±10%之间"] == "disclaimer"
    assert guosen["报告中投资建议所涉及的评级(如有)分为股票评级和行业评级(另有说明的除外)。"] == "disclaimer"
    assert guosen["本报告仅供我公司客户使用,本公司不会因接收人收到本报告而视其为客户。"] == "disclaimer"
    assert guosen["请务必阅读正文之后的免责声明及其项下所有内容"] == "disclaimer"
    assert guosen["我们认为AI将持续驱动巨头提升变现水平。"] == "sentence"
    shanxi = _kinds(CORPUS / "002_d1516b028d16e038.txt")
    assert shanxi["分析师:高宇洋"] == "contact"
    assert (
        shanxi["本人承诺不利用自己的身份、地位或执业过程中所掌握的信息为自己或他人谋取私利。"] == "disclaimer"
    )
    assert shanxi["禁止任何公众媒体或者其他机构未经授权私自刊载或者转发我司的证券研究报告。"] == "disclaimer"
    assert shanxi["表1:建议重点关注的公司"] == "heading"
    for path in sorted(CORPUS.glob("*.txt")):
        kinds = set(_kinds(path).values())
        assert kinds <= set(KINDS) and SUMMARY_KIND in kinds, path


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("评级说明\n买入：预期未来6个月内相对基准指数涨幅15%以上。", "disclaimer"),
        ("公司评级分为买入、增持、中性、减持和卖出五级。", "disclaimer"),
        ("买入：预期未来6个月内，个股相对同期基准指数涨幅在20%以上。", "disclaimer"),
        ("Buy: we expect the stock to outperform the index by more than 15% over 12 months.", "disclaimer"),
        ("我们维持公司买入评级，目标价上调至八十元。", "sentence"),
        ("| 寒武纪 | 买入 | 算力芯片龙头 | 688256 |", "table_row"),
        ("证券分析师：张伦可 执业证书编号：S0980520040001", "contact"),
        ("联系电话：010-12345678 邮箱：analyst@broker.com", "contact"),
        # The header's fields, whatever the bracket style; a key before a statement is a sentence.
        ("【投资评级】买入(维持)", "field"),
        ("投资评级:买入(维持)", "field"),
        ("**投资评级:买入(维持)**", "field"),
        ("Rating: OUTPERFORM (maintained)", "field"),
        ("上次评级:买入", "field"),
        ("投資評等:買進(維持)", "field"),
        ("【目标价】128元", "field"),
        ("报告日期:2025年10月17日", "field"),
        ("公司点评:国产替代加速,维持买入评级", "sentence"),
        ("评级:维持买入评级,目标价上调至120元。", "sentence"),
        # A Chinese section number before a short title is a heading, before a statement a sentence.
        ("一、业绩概览", "heading"),
        ("二、国产替代与算力需求", "heading"),
        ("三、公司营收同比增长35%,毛利率提升", "sentence"),
        # Only a legal heading opens a disclaimer section, not the report's own rating section.
        ("投资评级\n买入(维持)", "field"),  # a rating with its action: the rating field, no disclaimer
        ("盈利预测与投资评级\n我们预计公司2025年营收30亿元,维持买入评级。", "sentence"),
        ("公司治理与信息披露\n公司治理结构完善,信息披露及时。", "sentence"),
        ("国信证券投资评级\n公司治理结构完善,信息披露及时。", "disclaimer"),
        ("重要信息披露\n本公司具备证券投资咨询业务资格。", "disclaimer"),
        ("投资评级说明\n以报告发布日后的6个月内公司股价相对同期沪深300指数的涨跌幅为基准。", "disclaimer"),
        ("股票投资评级说明\n以报告发布日后6个月内为基准。", "disclaimer"),
        ("【投资评级说明】\n以报告发布日后6个月内为基准。", "disclaimer"),
        ("免责声明及评级说明\n以报告发布日后6个月内为基准。", "disclaimer"),
        # A key before a statement is no field, whatever the key.
        ("价格:本周碳酸锂价格下跌3%", "sentence"),
        ("股价:短期承压,估值已处低位", "sentence"),
        ("日期:公司将于3月15日发布年报", "sentence"),
        ("原评级:买入,现下调至中性", "sentence"),
        ("投资建议:买入(维持)", "field"),
        ("总市值:1,234亿元", "field"),
        ("二、业绩超预期。维持买入评级", "sentence"),
        # A scale's definitions split at ";" leave bands of their own; an English level's abbreviation.
        ("看好:行业指数相对于沪深300指数表现+10%以上;看淡:-10%以下。", "disclaimer"),
        ("减持：-10%以下。", "disclaimer"),
        (
            "Overweight (OW): The stock's total return is expected to exceed the coverage average.",
            "disclaimer",
        ),
        ("减持比例:公司股东拟减持不超过2%的股份。", "sentence"),
        ("增持计划已实施完毕,控股股东累计增持1.2%。", "sentence"),
        # A related-research list names other reports; a sentence about a document is a statement.
        ("《中际旭创（300308.SZ）：800G龙头地位稳固，硅光方案领先》2025-08-26", "heading"),
        ("《AI算力需求持续高增》(2025年4月)", "heading"),
        ("《关于推动算力基础设施高质量发展的意见》发布,明确2025年算力规模目标。", "sentence"),
        # A table's header taken from a PDF: its columns show only in the spacing as written.
        ("代码      公司      股价（元）   2025E EPS   2026E EPS   2025E PE   评级", "table_row"),
        ("公司营收同比增长35%,  毛利率提升  2.1个百分点,  费用率下降。", "sentence"),
        ("请仔细阅读本报告末页声明                                     2", "heading"),
        # Boilerplate, a research visit's participants and arrangements, a broker's name.
        ("股市有风险，投资需谨慎。", "disclaimer"),
        ("公司参会人员：副总裁兼董事会秘书李斌；", "contact"),
        ("调研方式：电话会议", "contact"),
        ("纪要整理：XX证券研究所计算机组。", "contact"),
        ("Victoria Harbour Securities Ltd.", "heading"),
        ("Equity Research | 15 September 2025", "heading"),
        # A WeChat repost's byline and disclaimer; a table of contents' entry with a dot leader.
        ("原创 XX电子研究团队 XX电子研究 2025年11月03日 08:15 上海", "contact"),
        ("若您并非专业投资者,请勿订阅、接收或使用本订阅号中的任何信息。", "disclaimer"),
        ("行业空间:国产AI芯片进入放量期 ............ 3", "heading"),
        ("【计算机】金山办公(688111.SH)三季报点评:WPS AI付费转化加速", "heading"),
        ("【点评】公司三季度营收同比增长30%,维持买入评级。", "sentence"),
        ("公司营收同比增长30% | 毛利率提升至45%,盈利能力改善。", "sentence"),
        # Letter-spaced headings and pdftotext's spaced English are no table rows.
        ("投  资  要  点", "heading"),
        ("We  expect  revenue  growth  of  20%  next  year  on  AI  demand", "sentence"),
        # A statement under a section label in brackets stays a statement.
        ("【盈利预测】我们预计公司2025-2027年归母净利润分别为7.2/8.9/10.6亿元,维持买入评级", "sentence"),
        ("公司管理层表示调研方式将更加灵活,参会机构数量创新高。", "sentence"),
        # Rating scales of Taiwan's and smaller brokers, legal boilerplate in Chinese and English (analysts'
        # tests, forty-fourth session).
        ("買進：預期未來12個月絕對報酬率大於15%；", "disclaimer"),
        ("強力買進：預期未來12個月內股價報酬率超過30%；", "disclaimer"),
        ("回避：跌幅在5%以上。", "disclaimer"),
        ("投資評等說明", "disclaimer"),
        ("投資人應審慎評估並自負投資風險。", "disclaimer"),
        ("分析师声明：作者具有中国证券业协会授予的证券投资咨询执业资格。", "disclaimer"),
        ("This report is not an offer to buy or sell any security.", "disclaimer"),
        ("Past performance is not indicative of future results.", "disclaimer"),
        (
            "The research analysts primarily responsible for this report certify that the views are theirs.",
            "disclaimer",
        ),
        ("专家背景：某头部光模块厂商前产品总监，从业15年。", "contact"),
        ("会议时间：2026年10月31日（周五）20:00-21:10", "contact"),  # mostly figures, kept: it holds the date
        ("主持人：浙商通信 张远航", "contact"),
        ("目标价（人民币）：96.00元", "field"),
        ("市价（人民币）：71.46元", "field"),
        ("投資評等 買進（維持）", "field"),  # a Taiwan level, key and value run together by the normaliser
        # ...but a sentence about a stock's rise stays a sentence.
        ("公司股价年内涨幅在30%以上,跑赢行业指数。", "sentence"),
    ],
)
def test_kind_of_typical_lines(text, kind):
    assert segment(text).sentences[-1].kind == kind


def test_adj_is_an_abbreviation():
    units = [
        s.text
        for s in segment("Net debt/adj. EBITDA stayed at 6.8x; we raise our adj. EBITDA by 4%.").sentences
    ]
    assert units == ["Net debt/adj. EBITDA stayed at 6.8x;", "we raise our adj. EBITDA by 4%."]


def test_a_bold_or_field_line_starts_a_unit_of_its_own_in_wrapped_text():
    """PDF text breaks lines mid-sentence; a bold header line or a field after such a break is not glued
    to the broken sentence."""
    units = segment("公司营收保持增长,预计未来三年收\n**投资评级:买入(维持)**\n入复合增速20%。").sentences
    assert [u.kind for u in units][1] == "field" and units[1].text == "**投资评级:买入(维持)**"
    units = segment("公司营收保持增长,预计未来三年收\n目标价:128元\n入复合增速20%。").sentences
    assert [(u.kind, u.text) for u in units][1] == ("field", "目标价:128元")


def test_a_bold_line_is_not_a_bullet():
    """Markdown bold ("**...**") keeps its first asterisk: the text and offsets are the line's as written."""
    (unit,) = segment("**投资评级:买入(维持)**").sentences
    assert unit.text == "**投资评级:买入(维持)**" and unit.start == 0
    (bullet,) = segment("* 公司营收同比增长35%。").sentences
    assert bullet.text == "公司营收同比增长35%。" and bullet.start == 2


def _unit(text: str, kind: str, rating: str, score: float, sentiment: str = "neutral") -> dict:
    from fintag.data.taxonomy import RATING, SENTIMENT, THEMES

    return {
        "text": text,
        "start": 0,
        "end": len(text),
        "kind": kind,
        "sentiment": {"label": sentiment, "score": 0.9, "scores": dict.fromkeys(SENTIMENT.labels, 0.3)},
        "themes": {"labels": ["compute"], "scores": dict.fromkeys(THEMES.labels, 0.9)},
        "rating": {"label": rating, "score": score, "scores": dict.fromkeys(RATING.labels, 0.1)},
    }


def test_summary_reads_sentences_only_and_never_states_a_disclaimers_rating():
    units = [
        _unit("买入：预期未来6个月内相对基准指数涨幅15%以上", "disclaimer", "buy", 0.99, "positive"),
        _unit("zhang@broker.com", "contact", "sell", 0.98, "negative"),
        _unit("我们维持公司中性评级。", "sentence", "neutral", 0.7),
        _unit("算力需求旺盛。", "sentence", "none", 0.8, "positive"),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "neutral"
    assert summary["rating"]["evidence"]["text"] == "我们维持公司中性评级。"
    assert [r["label"] for r in summary["ratings_stated"]] == ["neutral"]
    assert summary["sentences"] == 2 and summary["sentiment_index"] == 0.5
    assert summary["kind_counts"] == {**dict.fromkeys(KINDS, 0), "sentence": 2, "disclaimer": 1, "contact": 1}


def test_a_report_without_sentences_has_no_shares_rather_than_zero_shares():
    """Only a disclaimer and a contact line: nothing to count, so the shares and indices are null (JSON and
    the API schema) and empty cells (CSV), not 0.0, which would read as "no theme found"."""
    from fintag.data.taxonomy import THEMES
    from fintag.serve.outputs import flatten
    from fintag.serve.schemas import ReportSummary

    units = [
        _unit("买入：预期未来6个月内相对基准指数涨幅15%以上", "disclaimer", "buy", 0.99, "positive"),
        _unit("zhang@broker.com", "contact", "sell", 0.98, "negative"),
    ]
    summary = summarize(units)
    assert summary["sentences"] == 0 and summary["sentiment_index"] is None
    assert summary["theme_share"] == dict.fromkeys(THEMES.labels)
    assert ReportSummary.model_validate(summary).theme_share == dict.fromkeys(THEMES.labels)
    record = {"type": "summary", "report_id": "r", "path": "r.txt", "encoding": "utf-8", "summary": summary}
    row = flatten(record)
    assert row["themes"] == "" and all(row[f"{t}_share"] is None for t in THEMES.labels)
    assert all(row[f"{t}_sentiment_index"] is None for t in THEMES.labels) and row["rating_evidence"] is None
    assert row["positive_sentences"] == row["negative_sentences"] == 0
    # With one sentence the share is a number again.
    one = summarize([*units, _unit("算力需求旺盛。", "sentence", "none", 0.8, "positive")])
    assert one["theme_share"]["compute"] == 1.0


def test_the_header_rating_field_comes_before_any_sentence_and_a_previous_rating_never_does():
    """A peer's rating in the body can score higher than the header's field; the field is the report's.
    A previous-rating field is listed but never stated; a target price's stray rating label is nobody's."""
    units = [
        _unit("投资评级:持有(下调)", "field", "neutral", 0.92),
        _unit("上次评级:买入", "field", "buy", 0.99, "positive"),
        _unit("目标价:52.00元", "field", "buy", 0.6, "positive"),
        _unit("可比公司中微公司、拓荆科技我们均给予买入评级。", "sentence", "buy", 0.97, "positive"),
        _unit("公司营收同比下滑12%。", "sentence", "none", 0.9, "negative"),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "neutral"
    assert summary["rating"]["evidence"]["text"] == "投资评级:持有(下调)"
    assert summary["rating"]["evidence"]["index"] == 0
    stated = {r["text"]: (r["label"], r["previous"]) for r in summary["ratings_stated"]}
    assert stated == {
        "投资评级:持有(下调)": ("neutral", False),
        "上次评级:买入": ("buy", True),
        "可比公司中微公司、拓荆科技我们均给予买入评级。": ("buy", False),
    }
    assert summary["sentences"] == 2 and summary["kind_counts"]["field"] == 3
    # The header's fields, by key: the previous rating and the target price included.
    assert summary["fields"] == {
        "rating": {"value": "持有(下调)", "index": 0},
        "previous_rating": {"value": "买入", "index": 1},
        "target_price": {"value": "52.00元", "index": 2},
    }
    # Without the header field the best sentence states it; a previous rating alone states nothing.
    assert summarize(units[1:])["rating"]["label"] == "buy"
    assert summarize(units[3:])["rating"]["evidence"]["text"].startswith("可比公司")
    assert summarize(units[1:3] + units[4:])["rating"]["label"] == "none"
    # A sentence that names the previous rating comes after any other sentence or title.
    earlier = _unit("我们此前给予公司买入评级。", "sentence", "buy", 0.99, "positive")
    title = _unit("中芯国际点评:业绩承压,下调至中性", "heading", "neutral", 0.8, "negative")
    assert summarize([earlier, title])["rating"]["label"] == "neutral"
    assert summarize([earlier])["rating"]["label"] == "buy"
    assert [r["previous"] for r in summarize([earlier, title])["ratings_stated"]] == [True, False]
    # A rating action ("maintain") comes before a bare mention; a peer's rating after both.
    own = _unit("We maintain our Hold rating on Hygon as valuation looks full.", "sentence", "neutral", 0.8)
    other = _unit("We prefer Cambricon, which we rate Buy.", "sentence", "buy", 0.95, "positive")
    peer = _unit("可比公司中微公司我们给予买入评级,公司估值偏高,给予增持评级。", "sentence", "buy", 0.99)
    assert summarize([other, own])["rating"]["label"] == "neutral"
    assert summarize([peer, other])["rating"]["label"] == "buy"
    assert summarize([peer, other])["rating"]["evidence"]["text"] == other["text"]


@pytest.mark.parametrize(
    ("units", "stated"),
    [
        # A rating action outranks a peer or a previous rating named in the same sentence.
        (
            [
                ("参考可比公司估值,给予公司2025年30倍PE,维持买入评级。", "buy", 0.95),
                ("行业景气度向上,给予行业增持评级。", "outperform", 0.5),
            ],
            "buy",
        ),
        (
            [
                ("我们将公司评级上调至买入(原评级:增持),目标价128元。", "buy", 0.95),
                ("公司长期看好。", "outperform", 0.4),
            ],
            "buy",
        ),
        (
            [
                ("We upgrade the stock to Buy from Hold (previously rated Hold).", "buy", 0.97),
                ("We like it.", "outperform", 0.35),
            ],
            "buy",
        ),
        # Seed 004: "(maintained)" is an action as much as "maintains" in a sentence about other companies.
        (
            [
                ('The investment rating for the company is "Buy" (maintained)', "buy", 0.994),
                (
                    'The report maintains a "Recommended" rating for several companies in the industry',
                    "outperform",
                    0.89,
                ),
            ],
            "buy",
        ),
        # "维持高位" is no rating action, and a stray 0.30 never outranks a confident statement.
        (
            [
                ("给予公司买入评级,目标价85元。", "buy", 0.97),
                ("公司毛利率维持高位,盈利能力突出。", "outperform", 0.30),
            ],
            "buy",
        ),
    ],
)
def test_a_rating_action_outranks_a_named_peer_or_previous_rating(units, stated):
    tagged = [_unit(text, "sentence", label, score) for text, label, score in units]
    summary = summarize(tagged)
    assert summary["rating"]["label"] == stated and summary["rating"]["evidence"]["text"] == units[0][0]
    assert not summary["ratings_stated"][0]["previous"]


def test_a_traditional_reports_fields_and_markers_are_read_in_its_normalised_text():
    """Units keep the text as written (投資評等, 目標價); the splitter classified them on the normalised
    text, and the summary reads its markers there too."""
    written = ["投資評等:買進(維持)", "目標價:1,500元", "我們維持買進評等,目標價上調至1,500元。"]
    units = [
        {**_unit(text, kind, label, score), "text_normalized": normalize_text(text)}
        for text, kind, label, score in zip(
            written, ("field", "field", "sentence"), ("buy", "none", "buy"), (0.8, 0.9, 0.99)
        )
    ]
    assert [u.kind for u in segment("\n".join(written)).sentences] == ["field", "field", "sentence"]
    summary = summarize(units)
    assert summary["rating"]["evidence"]["text"] == "投資評等:買進(維持)"  # the field, over a 0.99 sentence
    assert summary["fields"] == {
        "rating": {"value": "买进(维持)", "index": 0},
        "target_price": {"value": "1,500元", "index": 1},
    }


def test_the_companys_rating_field_comes_before_the_industrys():
    units = [
        _unit("行业评级:强于大市", "field", "outperform", 0.95),
        _unit("公司评级:买入", "field", "buy", 0.8),
    ]
    assert summarize(units)["rating"]["label"] == "buy"
    assert summarize(units[:1])["rating"]["label"] == "outperform"
    assert summarize(units)["fields"] == {
        "industry_rating": {"value": "强于大市", "index": 0},
        "rating": {"value": "买入", "index": 1},
    }
    assert field_key("Sector Rating: Overweight") == "industry_rating"
    assert field_key("Stock Rating: Buy") == field_key("Rating: BUY") == "rating"


def test_a_header_line_states_the_rating_but_counts_in_no_share():
    """ "【投资评级】买入(维持)" is a field of the header, not a sentence; it states the report's rating."""
    assert [u.kind for u in segment("【投资评级】买入(维持)").sentences] == ["field"]
    units = [
        _unit("【投资评级】买入(维持)", "field", "buy", 0.95, "positive"),
        _unit("评级说明:增持:预期未来6个月内超越基准5%-15%", "disclaimer", "outperform", 0.99),
        _unit("公司营收同比增长18%,毛利率提升。", "sentence", "none", 0.9, "positive"),
        _unit("2023A 12.3 45.6 | buy", "table_row", "sell", 0.99, "negative"),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "buy"
    assert summary["rating"]["evidence"]["text"] == "【投资评级】买入(维持)"
    assert [r["label"] for r in summary["ratings_stated"]] == ["buy"]
    assert summary["sentences"] == 1 and summary["sentiment_index"] == 1.0


def test_every_tagged_row_has_a_kind_and_the_seed_summary_uses_sentences_only(tmp_path, tiny_checkpoint_dir):
    seed = CORPUS / "003_79c94fc73134dc31.txt"
    assert _tag(seed, "--model", tiny_checkpoint_dir, "--out", tmp_path / "t.jsonl") == 0
    records = _jsonl(tmp_path / "t.jsonl")
    rows = [r for r in records if r["type"] == "sentence"]
    assert rows and all(r["kind"] in KINDS for r in rows)
    sentences = [r["text"] for r in rows if r["kind"] == SUMMARY_KIND]
    (summary,) = [r["summary"] for r in records if r["type"] == "summary"]
    assert summary["sentences"] == len(sentences) < len(rows)
    assert all(r["text"] in sentences for r in summary["ratings_stated"])


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_names_the_command_and_imports_nothing_heavy(command):
    code = (
        "import sys\nfrom fintag.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *command.split(), "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"usage: fintag {command} "), out[:200]
    assert "HEAVY=" in proc.stderr and proc.stderr.rsplit("HEAVY=", 1)[1] == "", proc.stderr[-300:]
    description = out.split("\n\n")[1]
    assert COMMANDS[command].summary[:20].lower() in description.lower()
    flat = " ".join(out.split())
    assert "(default: None)" not in flat and "default: standard output) (default" not in flat
    for line in out.splitlines():
        assert line.count("default") <= 1, line
    if "true|false" in out or "[RESUME]" in out:
        assert "[true|false]" in out and "[RESUME]" not in out


def test_unknown_command_and_unknown_flag_are_named(capsys):
    assert main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'bogus'" in err and "usage: fintag <command>" in err
    assert main(["data", "bogus"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fintag data <command>") and "data validate" in out and "serve" not in out
    assert main(["tag", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err and "HfArgumentParser" not in err
    assert err.startswith("usage: fintag tag ")


# ---------------------------------------------------------------- model path errors


def test_a_missing_model_folder_gets_one_message_naming_the_folder_and_cwd(
    tmp_path, monkeypatch, caplog, report_file
):
    from fintag.serve.settings import SettingsError, load_settings

    monkeypatch.chdir(tmp_path)
    assert _tag(report_file, "--model", "artifacts/run/model", "--out", tmp_path / "t.jsonl") == 1
    (message,) = [e for e in _errors(caplog) if "artifacts/run/model" in e]
    assert "does not exist" in message and str(tmp_path) in message and "Repo id" not in message
    with pytest.raises(SettingsError) as served:
        load_settings(["--model", "artifacts/run/model"])
    assert "does not exist" in str(served.value) and str(tmp_path) in str(served.value)


def test_serve_without_a_model_takes_the_demo_checkpoint_or_names_both_fixes(
    tmp_path, monkeypatch, caplog, tiny_checkpoint_dir
):
    from fintag.serve.app import serve_main
    from fintag.serve.settings import load_settings, with_default_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINTAG_MODEL", raising=False)
    assert serve_main([]) == 2
    (message,) = _errors(caplog)
    assert "artifacts/run/model" in message and "--model" in message and "FINTAG_MODEL" in message
    (tmp_path / "artifacts" / "run").mkdir(parents=True)
    (tmp_path / "artifacts" / "run" / "model").symlink_to(tiny_checkpoint_dir)
    assert with_default_model(load_settings([])).model == "artifacts/run/model"
    given = load_settings(["--model", str(tiny_checkpoint_dir)])
    assert with_default_model(given).model == str(tiny_checkpoint_dir)


def test_a_run_folder_points_to_its_model_subfolder(tmp_path, tiny_checkpoint_dir, caplog, report_file):
    shutil.copytree(tiny_checkpoint_dir, tmp_path / "run" / "model")
    assert _tag(report_file, "--model", tmp_path / "run", "--out", tmp_path / "t.jsonl") == 1
    assert any(f"pass --model {tmp_path / 'run' / 'model'}" in e for e in _errors(caplog)), _errors(caplog)


def test_an_empty_folder_says_why_nothing_was_tagged(tmp_path, tiny_checkpoint_dir, caplog):
    """...and leaves no --out behind, so the corrected command can write to the same --out; neither does a
    run whose every input was unreadable."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / "t.jsonl"
    assert _tag(tmp_path / "empty", "--model", tiny_checkpoint_dir, "--out", out) == 2
    assert any("no report files" in e and "empty" in e for e in _errors(caplog)), _errors(caplog)
    assert _tag(tmp_path / "missing.txt", "--model", tiny_checkpoint_dir, "--out", out) == 2
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    assert _tag(binary, "--model", tiny_checkpoint_dir, "--out", out) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.txt", "empty"]
    good = tmp_path / "empty" / "r.txt"
    good.write_text("算力需求持续旺盛，国产芯片替代进程加快。\n", encoding="utf-8")
    assert _tag(good, "--model", tiny_checkpoint_dir, "--out", out) == 0 and out.stat().st_size > 0


# ---------------------------------------------------------------- outputs and resume


@pytest.fixture
def report_file(tmp_path) -> Path:
    path = tmp_path / "a" / "r.txt"
    path.parent.mkdir()
    path.write_text(
        "算力需求持续旺盛，国产芯片替代进程加快。\n我们维持对公司的买入评级。\n", encoding="utf-8"
    )
    return path


def test_out_csv_writes_csv_and_a_contradicting_format_is_refused(tmp_path, tiny_checkpoint_dir, report_file):
    out = tmp_path / "x.csv"
    assert _tag(report_file, "--model", tiny_checkpoint_dir, "--out", out) == 0
    assert out.read_text(encoding="utf-8").startswith("\ufefftype,report_id,path,")
    other = tmp_path / "y.csv"
    assert _tag(report_file, "--model", tiny_checkpoint_dir, "--out", other, "--format", "jsonl") == 2
    assert not other.exists()


def test_resume_knows_a_file_given_relative_then_absolute(
    tmp_path, tiny_checkpoint_dir, report_file, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "t.jsonl"
    assert _tag("a/r.txt", "--model", tiny_checkpoint_dir, "--out", out) == 0
    first = out.read_text(encoding="utf-8")
    assert _tag(report_file, "--model", tiny_checkpoint_dir, "--out", out, "--resume") == 0
    assert out.read_text(encoding="utf-8") == first  # nothing tagged twice
    assert {r["path"] for r in _jsonl(out)} == {str(report_file)}


def test_files_of_the_same_name_in_two_folders_get_two_report_ids(tmp_path, tiny_checkpoint_dir, report_file):
    twin = tmp_path / "b" / "r.txt"
    twin.parent.mkdir()
    shutil.copy(report_file, twin)
    out = tmp_path / "t.jsonl"
    assert _tag(report_file, twin, "--model", tiny_checkpoint_dir, "--out", out) == 0
    ids = {r["path"]: r["report_id"] for r in _jsonl(out) if r["type"] == "summary"}
    assert ids == {str(report_file): "a/r", str(twin): "b/r"}


def test_stdin_one_sentence_per_line(monkeypatch, capsys, tiny_checkpoint_dir):
    lines = "算力需求旺盛。国产替代加速!\n买入\n\n昇腾910C出货\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines.encode("utf-8"))))
    assert _tag("-", "--model", tiny_checkpoint_dir, "--stdin", "lines") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = [r for r in records if r["type"] == "sentence"]
    assert [r["text"] for r in rows] == ["算力需求旺盛。国产替代加速!", "买入", "昇腾910C出货"]
    assert records[-1]["type"] == "summary"


def test_report_ids_are_unique_per_path():
    from fintag.serve.batch import report_ids

    paths = [Path(p) for p in ("/t/a/r.txt", "/t/b/r.txt", "/t/z/s.txt", "/t/z/s.md", "/t/u.txt")]
    ids = report_ids(paths)
    assert ids == {
        "/t/a/r.txt": "a/r",
        "/t/b/r.txt": "b/r",
        "/t/z/s.txt": "s.txt",
        "/t/z/s.md": "s.md",
        "/t/u.txt": "u",
    }
    assert len(set(ids.values())) == len(paths)


def test_a_restated_sentence_counts_once_in_shares_indices_and_evidence():
    """A summary paragraph restated in the body ("综上," before it) is one statement: listed in `restated`,
    counted once in the counts, shares and indices, one piece of evidence; a sentence like it with other
    numbers is a statement of its own."""
    from fintag.serve.schemas import ReportSummary

    view = "我们仍长期看好算力板块,重点推荐光通信龙头中际旭创、新易盛。"
    units = [
        _unit(view, "sentence", "none", 0.9, "positive"),
        _unit("综上," + view, "sentence", "none", 0.9, "positive"),
        _unit(view, "heading", "none", 0.9, "positive"),  # not a sentence: neither counted nor restated
        _unit(view, "sentence", "none", 0.9, "positive"),
        _unit("海外云厂商资本开支同比增长60%。", "sentence", "none", 0.9, "positive"),
        _unit("海外云厂商资本开支同比增长45%。", "sentence", "none", 0.9, "positive"),
        _unit("公司毛利率同比下降3个百分点。", "sentence", "none", 0.9, "negative"),
    ]
    units[4]["sentiment"]["score"] = 0.5
    units[6]["themes"]["labels"] = []
    summary = summarize(units)
    assert summary["sentences"] == 6 and summary["restated"] == [1, 3]
    texts = [e["text"] for e in summary["evidence"]["sentiment:positive"]]
    assert texts == [units[0]["text"], units[5]["text"], units[4]["text"]]
    assert [e["index"] for e in summary["evidence"]["sentiment:positive"]] == [0, 5, 4]
    assert summary["sentiment_counts"] == {"positive": 3, "neutral": 0, "negative": 1}
    assert summary["sentiment_index"] == 0.5 and summary["theme_share"]["compute"] == 0.75
    assert ReportSummary.model_validate(summary).restated == [1, 3]


def test_the_summary_gives_the_reports_title_line(tmp_path, tiny_checkpoint_dir):
    """`fintag tag` puts the report's first line in the summary when it reads as a title, as written
    (traditional stays traditional), with the position of its first unit; CSV has it as `title`."""
    report = tmp_path / "r.txt"
    report.write_text(
        "台積電(2330 TT):AI需求強勁,上調目標價\n投資評等:買進(維持)\n\n第三季營收季增10.1%,優於財測上緣。\n",
        encoding="utf-8",
    )
    untitled = tmp_path / "u.txt"
    untitled.write_text("投资要点\n公司三季度营收同比增长18%。\n算力需求旺盛。\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert tag_main([str(report), str(untitled), "--model", str(tiny_checkpoint_dir), "--out", str(out)]) == 0
    rows = csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")))
    rows = [r for r in rows if r["type"] == "summary"]
    assert [r["title"] for r in rows] == ["台積電(2330 TT):AI需求強勁,上調目標價", ""]
    assert [r["restated"] for r in rows] == ["0", "0"]


def test_the_title_line_states_a_rating_but_is_not_counted_among_the_sentences():
    """The title line is the report's headline: the stated rating reads it ("...下调至中性"), the counts,
    shares and indices do not (other titles are not counted either)."""
    from fintag.data.split import Title

    units = [
        _unit("浪潮信息点评:AI服务器毛利承压,下调至中性", "sentence", "neutral", 0.9, "negative"),
        _unit("公司三季度营收同比增长30%。", "sentence", "none", 0.9, "positive"),
        _unit("算力需求旺盛。", "sentence", "none", 0.9, "positive"),
    ]
    title = Title(index=0, units=1, text=units[0]["text"])
    summary = summarize(units, title)
    assert summary["title"] == {"text": units[0]["text"], "index": 0, "units": 1}
    assert summary["sentences"] == 2 and summary["sentiment_index"] == 1.0
    assert summary["sentiment_counts"]["negative"] == 0
    assert summary["rating"]["label"] == "neutral" and summary["rating"]["evidence"]["index"] == 0
    untitled = summarize(units)
    assert untitled["title"] is None and untitled["sentences"] == 3 and untitled["sentiment_index"] == 0.3333


def test_a_copy_of_the_title_line_in_the_text_is_a_restatement():
    title = "山证通信周跟踪--字节跳动大幅催化算力产业链,O3推理表现震撼,光模块订单持续超预期"
    summary, _ = summary_of(f"{title}\n{title}\n字节跳动资本开支大幅增加。\n")
    assert summary["title"]["index"] == 0 and summary["restated"] == [1] and summary["sentences"] == 2
    assert summary["sentiment_counts"]["positive"] == 1
    # Under a bracketed column name (seed 002's "【山证通信】周跟踪--..."), title and copy are headlines:
    # the title still, the copy counted nowhere.
    summary, units = summary_of(f"【山证通信】{title}\n【山证通信】{title}\n字节跳动资本开支大幅增加。\n")
    assert summary["title"]["index"] == 0 and [u["kind"] for u in units[:2]] == ["heading", "heading"]
    assert summary["sentences"] == 1 and summary["restated"] == []


def test_a_morning_note_states_no_rating_of_its_own_and_lists_each_items():
    text = (
        "证券研究报告 | 晨会纪要\n2025年11月18日 星期二\n晨会纪要\n"
        "【计算机】金山办公(688111.SH):WPS AI付费转化加速\n我们维持“买入”评级,目标价358元。\n"
        "【通信】光迅科技(002281.SZ):毛利率不及预期\n我们将公司评级由“增持”下调至“中性”。\n"
    )
    rated = {"我们维持“买入”评级,目标价358元。": "buy", "我们将公司评级由“增持”下调至“中性”。": "neutral"}
    summary, _ = summary_of(text, rated)
    assert (
        summary["title"]["text"] == "晨会纪要"
        and summary["fields"]["date"]["value"] == "2025年11月18日星期二"
    )
    assert summary["rating"] == {"label": "none", "score": None, "evidence": None}
    assert sorted(r["label"] for r in summary["ratings_stated"]) == ["buy", "neutral"]
    # An item's rating or target price alone on its line ("买入(维持)") is no field of the digest's.
    items, _ = summary_of(text.replace("我们维持“买入”评级,目标价358元。", "买入(维持)\n目标价:358元"), rated)
    assert set(items["fields"]) == {"date"} and items["rating"]["label"] == "none"
    # The same items under a company report's header state its rating.
    summary, _ = summary_of(text.replace("晨会纪要", "公司点评"), rated)
    assert summary["rating"]["label"] in ("buy", "neutral")


@pytest.mark.parametrize(
    ("header", "date"),
    [
        ("证券研究报告 | 2025年11月20日\n", "2025年11月20日"),
        ("2024年12月26日 08:18 市场投研资讯\n", "2024年12月26日"),
        ("Equity Research | 15 September 2025\n", "15 September 2025"),
        ("", None),  # the event's date in a sentence is not the report's
        # A byline counted as a sentence but ending none; another report's date is not the report's.
        ("Xin Lang Ji Jin· 2025-09-16 12:13\n", "2025-09-16"),
        ("《中际旭创:800G龙头地位稳固》2025-08-26\n证券研究报告 | 2025年11月20日\n", "2025年11月20日"),
    ],
)
def test_the_reports_date_is_read_from_a_header_line_that_holds_one(header, date):
    summary, _ = summary_of(f"{header}光模块需求旺盛\n2025年10月22日,公司发布三季报,营收同比增长44%。\n")
    assert summary["fields"].get("date", {}).get("value") == date


def test_a_credit_rating_is_no_investment_rating():
    units = [
        _unit("主体评级:AA+(中诚信国际) 评级展望:稳定", "sentence", "outperform", 0.93),
        _unit("代表债券:23江淮产投MTN001(AA+,剩余期限2.3年)", "sentence", "outperform", 0.61),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "none" and summary["ratings_stated"] == []
    # A company's own rating beside its bonds' credit rating still states it.
    units.append(_unit("公司主体评级AA+,我们首次覆盖给予“增持”评级。", "sentence", "outperform", 0.9))
    assert summarize(units)["rating"]["label"] == "outperform"


def test_the_target_price_of_the_rating_sentence_is_read_when_no_field_gives_one():
    """ "...对应目标价34.00元,首次覆盖,给予“增持”评级" states the report's target price; a peer's sentence
    ("We prefer Cambricon, which we rate Buy with a target price of RMB 1,650") does not."""
    own = _unit(
        "参考可比公司估值,对应目标价34.00元,首次覆盖,给予“增持”评级。", "sentence", "outperform", 0.95
    )
    summary = summarize([_unit("公司营收同比增长12%。", "sentence", "none", 0.9), own])
    assert summary["fields"]["target_price"] == {"value": "34.00元", "index": 1}
    peer = _unit(
        "We prefer Cambricon, which we rate Buy with a target price of RMB 1,650.", "sentence", "buy", 0.9
    )
    hold = _unit("We maintain our Hold rating on Hygon as valuation looks full.", "sentence", "neutral", 0.97)
    summary = summarize([hold, peer])
    assert summary["rating"]["label"] == "neutral" and "target_price" not in summary["fields"]
    assert (
        summarize([_unit("We raise our PT to US$26, reiterate Overweight.", "sentence", "outperform", 0.9)])[
            "fields"
        ]["target_price"]["value"]
        == "US$26"
    )


def test_when_a_field_states_the_rating_the_target_price_is_the_rating_sentences():
    """A sidebar's "买入(维持)" states the report's rating; the target price is in the sentence that states
    the same rating, not in a peer's with another rating, nor in a previous rating's."""
    field = _unit("买入(维持)", "field", "buy", 0.97)
    peer = _unit("可比公司中,我们给予中科曙光“增持”评级,目标价78.00元。", "sentence", "outperform", 0.9)
    own = _unit("给予公司2027年32倍PE,对应目标价292.60元,维持“买入”评级。", "sentence", "buy", 0.95)
    summary = summarize([field, peer, own])
    assert summary["rating"]["label"] == "buy"
    assert summary["fields"]["target_price"] == {"value": "292.60元", "index": 2}
    assert "target_price" not in summarize([field, peer])["fields"]


def test_a_unit_naming_no_rating_or_another_brokers_rating_states_none():
    """The model may give a rating to the company's name or a price line; a unit that names no rating
    level states none. Another broker's rating, reported, is not the report's: a news piece that quotes
    two foreign brokers states none."""
    units = [
        _unit("拓荆科技(688072.SH)", "heading", "buy", 0.97),
        _unit("Share price (14 Nov): HK$6.09", "heading", "buy", 0.91),
        _unit("某外资券商给予“买进”评等,并将目标价由3,600元上调至4,200元。", "sentence", "buy", 0.99),
        _unit("另一家美系外资维持“中立”评等,目标价3,300元。", "sentence", "neutral", 0.98),
        _unit("Consensus rating is Buy, with 25 of 31 analysts positive.", "sentence", "buy", 0.95),
        _unit("公司前三季度营收同比增长31%。", "sentence", "none", 0.99, "positive"),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "none" and summary["ratings_stated"] == []
    # The report's own rating, in any wording, is stated: Taiwan's 买进 (normalised), an English level.
    units += [
        _unit("我们维持券商板块“增持”评级,外资持续流入。", "sentence", "outperform", 0.9),
        _unit("首次覆盖,给予“买进”评等。", "sentence", "buy", 0.96),
        _unit("Maintain BUY with a TP of HK$7.80.", "sentence", "buy", 0.93),
    ]
    summary = summarize(units)
    assert summary["rating"]["label"] == "buy" and summary["rating"]["evidence"]["index"] == 7
    assert [r["index"] for r in summary["ratings_stated"]] == [7, 8, 6]


@pytest.mark.parametrize(
    "text",
    [
        # A broker's word in another sense, or with no rating after its verb: the report's own rating.
        "同业负债成本下调推动息差企稳,维持买入评级。",
        "外资持股比例持续上调,我们维持买入评级。",
        "投行业务维持领先地位,维持买入评级。",
        "我们维持汇丰控股买入评级。",
        "We maintain Buy with our 2026E EPS 7% above the Street.",
        # English levels outside the taxonomy's words.
        "We reiterate Equal Weight on the stock.",
        "Maintain Add with a TP of HK$12.",
        "We rate the shares Peer Perform.",
    ],
)
def test_the_reports_own_rating_is_stated_whatever_else_the_sentence_names(text):
    summary = summarize([_unit(text, "sentence", "buy", 0.95)])
    assert summary["rating"]["label"] == "buy" and len(summary["ratings_stated"]) == 1


@pytest.mark.parametrize(
    ("title", "header"),
    [
        ("刻蚀设备订单饱满，薄膜沉积新品放量", "中微公司（688012.SH）：刻蚀设备订单饱满，薄膜沉积新品放量"),
        (  # a copy without the company, long enough to be a sentence rather than a heading
            "中微公司（688012.SH）：刻蚀设备订单饱满，薄膜沉积新品放量，存储扩产带动新签订单再创历史新高",
            "刻蚀设备订单饱满，薄膜沉积新品放量，存储扩产带动新签订单再创历史新高",
        ),
    ],
)
def test_a_running_header_of_the_company_and_the_title_is_a_restatement(title, header):
    """A PDF's running header puts "company (code):" before the title on each page (or the title has it and
    the header not); companies' lines of a morning note that say the same after their names stay apart."""
    summary, _ = summary_of(
        f"{title}\n公司前三季度新签订单约96亿元。\n{header}\n公司前三季度新签订单约96亿元。\n"
    )
    assert summary["title"]["index"] == 0 and summary["restated"] == [2, 3]
    assert summary["sentences"] == 3 and summary["sentiment_counts"]["positive"] == 1

    note, _ = summary_of("晨会纪要\n中际旭创(300308):维持买入评级。\n新易盛(300502):维持买入评级。\n")
    assert note["restated"] == []


def test_a_restated_rating_sentence_states_the_rating_where_it_first_stands():
    """The copy in the body of the summary's rating sentence scores a little higher; the evidence is the
    first, and `ratings_stated` lists the sentence once."""
    units = [
        _unit("我们维持公司买入评级,目标价386元。", "sentence", "buy", 0.9847),
        _unit("公司三季度营收同比增长30%。", "sentence", "none", 0.9, "positive"),
        _unit("综上,我们维持公司买入评级,目标价386元。", "sentence", "buy", 0.9883),
    ]
    summary = summarize(units)
    assert summary["restated"] == [2]
    assert summary["rating"]["label"] == "buy" and summary["rating"]["evidence"]["index"] == 0
    assert [r["index"] for r in summary["ratings_stated"]] == [0]


def test_a_markdown_reports_front_matter_gives_title_date_rating_and_target_price():
    text = (
        "---\ntitle: '中际旭创(300308.SZ):800G放量,盈利能力持续提升'\npublish_date: 2025-11-12\n"
        "rating: 增持(维持)\ntarget_price: 168.00\nauthors: [张三]\n---\n\n"
        "# 中际旭创(300308.SZ):800G放量,盈利能力持续提升\n\n公司三季度净利润同比增长125%,超出市场预期。\n"
    )
    summary, _ = summary_of(text, {"rating: 增持(维持)": "outperform"})
    assert summary["title"]["text"] == "中际旭创(300308.SZ):800G放量,盈利能力持续提升"
    assert summary["rating"]["label"] == "outperform" and summary["rating"]["evidence"]["index"] == 2
    assert summary["fields"]["date"]["value"] == "2025-11-12"
    assert summary["fields"]["target_price"]["value"] == "168.00"
    assert summary["sentences"] == 2 and summary["restated"] == [4]  # the heading restates the title


def test_companies_ratings_in_brackets_are_a_list_of_picks_not_the_reports_rating():
    pick = "银行:息差压力边际缓和,高股息仍具配置价值,招商银行(增持)。"
    picks = "通信:重点关注中际旭创(买入)、新易盛(买入)。"
    text = f"A股策略周报\n流动性宽松延续,科技成长主线不改\n{pick}\n{picks}\n"
    summary, _ = summary_of(text, {pick: "outperform", picks: "buy"})
    assert summary["rating"]["label"] == "none"
    own = "我们维持公司“增持”评级(招商银行(增持)为行业首选)。"  # 评级 names the report's own rating
    summary, _ = summary_of(f"招商银行点评\n{own}\n", {own: "outperform"})
    assert summary["rating"]["label"] == "outperform"


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("汽车交付超预期,上调至(买入)", 2),  # a rating action's level in brackets is the report's
        ("首次覆盖:AI算力龙头,给予(买入)", 2),
        ("业绩超预期,维持(增持)", 3),
        ("重点推荐中际旭创(买入)、新易盛(买入)", None),  # 推荐 recommends the picks: no level of its own
    ],
)
def test_a_level_in_brackets_after_a_verb_is_no_pick(text, tier):
    from fintag.serve.stated_rating import rating_tier

    assert rating_tier({"kind": "sentence", "text": text}) == tier
