import unicodedata
from pathlib import Path

from fintag.data.normalize import _fast_text, detect_lang, normalize, normalize_text, to_simplified
from fintag.data.reader import read_report
from fintag.data.split import segment
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def test_fullwidth_traditional_citations_and_whitespace():
    n = normalize("字節跳動大幅催化算力產業鏈，ＡＩ需求[5][26]持續　驗證。")
    assert n.text == "字节跳动大幅催化算力产业链,AI需求持续验证。"


def test_summary_citation_marker_becomes_a_break():
    n = normalize("power demand [5][26][67] The emergence of Mid-training")
    assert n.text == "power demand\nThe emergence of Mid-training"


def test_citation_in_chinese_sentence_is_just_removed():
    assert normalize("资本开支创新高[3]。").text == "资本开支创新高。"


def test_control_format_and_bidi_characters_removed():
    assert normalize("算\u200b力\u202e需求\ufeff\x07").text == "算力需求"


def test_space_between_cjk_removed_but_not_between_words():
    assert normalize("国 产 替 代 and AI  capex").text == "国产替代 and AI capex"


def test_offsets_map_back_to_original():
    original = "【山證通信】周跟蹤\r\n字節跳動[1] 大幅催化  算力產業鏈"
    n = normalize(original)
    for i, ch in enumerate(n.text):
        src = original[n.offsets[i]]
        assert normalize(src).text in ("", ch) or ch == "\n"
    start = n.text.index("字节跳动")
    a, b = n.original_span(start, start + 4)
    assert original[a:b] == "字節跳動"


def test_detect_lang():
    assert detect_lang("投資評級:買入(維持)") == "zh-Hant"
    assert detect_lang("投资评级:买入(维持)") == "zh-Hans"
    assert detect_lang('The investment rating is "Buy" (maintained).') == "en"


def test_simplified_words_are_not_rewritten():
    simplified = (
        "华为昇腾910C性能可达H100的60%。",
        "昇腾910C",
        "华为乾崑ADS 4推送城市NOA",
        "股价升腾,需求旺盛。",
    )
    for text in simplified:
        assert normalize(text).text == text
        assert normalize_text(text) == text
    assert detect_lang("昇腾910C") == "zh-Hans"


def test_traditional_is_still_converted_and_kept_words_survive_inside_it():
    assert normalize("華為昇騰910C性能達到預期。").text == "华为昇腾910C性能达到预期。"
    assert normalize_text("華為昇騰910C性能達到預期。") == "华为昇腾910C性能达到预期。"
    assert normalize("股價升騰，需求旺盛。").text == "股价升腾,需求旺盛。"  # a genuine 升腾 stays 升腾
    # The decision is per line: a simplified line next to a traditional one is left as written.
    assert normalize("昇腾出货加速。\n國產替代加速推進。").text == "昇腾出货加速。\n国产替代加速推进。"


def test_no_simplified_sentence_of_the_seed_reports_is_changed_by_the_t2s_step():
    checked = 0
    for path in sorted(CORPUS.glob("*.txt")):
        for s in segment(read_report(path).text).sentences:
            if s.lang != "zh-Hans":
                continue
            folded = unicodedata.normalize("NFKC", s.original)
            assert to_simplified(folded) == folded, s.original
            checked += 1
    assert checked > 300


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=200))
def test_idempotent_and_offsets_valid(text):
    n = normalize(text)
    assert normalize(n.text).text == n.text
    assert len(n.offsets) == len(n.text)
    assert all(0 <= o < len(text) for o in n.offsets)
    assert list(n.offsets) == sorted(n.offsets)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=50))
def test_lone_surrogates_and_arbitrary_code_points_never_crash(text):
    n = normalize(text + "\ud800" + "\U0001f600" + "\u200f")
    assert "\ud800" not in n.text and "\u200f" not in n.text
    assert "\U0001f600" in n.text


# Characters where whole-string and per-character normalisation could part ways: line ends, tabs, unusual
# spaces, marks that NFKC composes, spacing accents NFKC turns into marks, halfwidth katakana with a voicing
# mark, Hangul jamo, phrase conversions, citation markers before an English capital, CJK around spaces.
_TRICKY = list(
    "\r\n\t  \u3000\xa0\u2003\u00a8\u00b4\u0301\u0308\u200b\u2028\ufeff\uff76\uff9e\u1100\u1161\u11a8"
    "ＡＢ１２，。（）[]5,-–•The 字節跳動算力產業鏈臺灣後發髮著乾坤℃①≥■é昇騰腾升乾崑¹²⁴m"
)
_TEXTS = st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(codec="utf-8"), max_size=120)


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
def test_normalize_text_fast_path_gives_the_same_text_as_normalize(text):
    assert normalize_text(text) == normalize(text).text


def test_report_text_takes_the_fast_path():
    raw = [
        "字節跳動大幅催化算力產業鏈，ＡＩ需求[5][26]持續　驗證。",
        "power demand [5][26][67] The emergence of Mid-training\r\nis ■ key",
        "维持“优于大市”评级，预计2026年营收同比增长35.2%（前值：28%）。",
        "国 产 替 代 and AI  capex ■",
    ]
    for text in raw:
        fast = _fast_text(text)
        assert fast is not None, text
        assert fast == normalize(text).text
    assert _fast_text("e\u0301") is None  # a combining mark: only the per-character path is exact
    assert _fast_text("capex ①") is None  # a circled number's NFKC depends on what follows it


def test_a_circled_number_does_not_run_into_the_figure_after_it():
    """NFKC makes "①" a plain "1": before a figure it becomes "(1)" ("①2025年以来" is not "12025年以来"),
    on both paths; before anything else it stays the digit, as the dataset was built."""
    from fintag.data.normalize import normalize, normalize_text

    for text, want in [
        ("①2025年以来,算力需求旺盛。", "(1)2025年以来,算力需求旺盛。"),
        ("营收达到⑩20亿元", "营收达到(10)20亿元"),
        ("① 通过其并行计算能力", "1 通过其并行计算能力"),
        ("❶2025年", "❶2025年"),  # NFKC leaves it as it is
    ]:
        assert normalize_text(text) == normalize(text).text == want
        assert normalize_text(want) == want


def test_a_footnote_marker_does_not_run_into_the_figure_before_it():
    """NFKC makes "⁴" a plain "4": a superscript after a figure, a word or an acronym is a footnote's marker
    and goes ("1.15⁴" is not "1.154"), on both paths; after a small Latin letter it is a unit's power
    ("m²"), and at the start of a line it is the footnote's own number."""
    from fintag.data.normalize import normalize, normalize_text

    for text, want in [
        ("PUE已降至1.15⁴,显著低于1.25", "PUE已降至1.15,显著低于1.25"),
        ("同比增长20.2%¹。", "同比增长20.2%。"),
        ("交付约6.8万架²,其中", "交付约6.8万架,其中"),
        ("规划算力约1.2 EFLOPS³(FP16)", "规划算力约1.2 EFLOPS(FP16)"),
        ("注¹²:口径调整", "注:口径调整"),
        ("面积10万m²的数据中心", "面积10万m2的数据中心"),
        ("¹ 按2.5kW标准机柜折算;", "1 按2.5kW标准机柜折算;"),
        # A power stays as NFKC gives it: after one letter (any script, full-width too) or a 10.
        ("R²达到0.92", "R2达到0.92"),
        ("方差σ²", "方差σ2"),
        ("面积5ｍ²", "面积5m2"),
        ("1.5×10⁴吨", "1.5×104吨"),
        ("10⁻³", "10−3"),
        ("营收⁽¹⁾增长", "营收增长"),  # a bracketed marker goes whole
    ]:
        assert normalize_text(text) == normalize(text).text == want
    n = normalize("增长20.2%¹,毛利率")
    assert n.original[slice(*n.original_span(0, len(n.text)))] == "增长20.2%¹,毛利率"


def test_a_long_run_of_superscripts_is_normalised_in_linear_time():
    import time

    from fintag.data.normalize import normalize

    timings = []
    for n in (5_000, 40_000):
        start = time.perf_counter()
        assert normalize("中" + "²" * n).text == "中"  # a marker after Chinese, however long
        timings.append(time.perf_counter() - start)
    assert timings[1] < 20 * timings[0] + 0.5  # 8x the input: quadratic would be 64x
