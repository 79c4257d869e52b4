"""Hostile input: the normaliser, the splitter and `Tagger` on arbitrary Unicode and 1 MB lines; the HTTP
API fuzzed from its own OpenAPI schema (schemathesis) and with malformed bodies; the API key.

Nothing here touches the network: the app runs in-process (ASGI) with the tiny random-weight tagger.
The long twins are marked `slow`; docs/reliability.md records the case counts and what they found.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fintag.data.normalize import normalize, normalize_text
from fintag.data.split import KINDS as fintag_kinds
from fintag.data.split import segment, sentence_id
from fintag.data.taxonomy import LANGS, TAXONOMY
from fintag.serve.app import SentenceTags, TagReportResponse, create_app
from fintag.serve.errors import ERROR_STATUS
from fintag.serve.settings import ServerSettings
from fintag.serve.tagger import EmptyReportError, Tagger
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from schemathesis.generation.modes import GenerationMode

API_KEY = "fuzz-key-" + "s3cr3t" * 4
KINDS = set(fintag_kinds)
ONE_MB = 1_000_000

# Pieces that uniform random Unicode rarely produces but reports and attackers do: controls, bidi and
# zero-width marks, lone surrogates, BOMs, emoji sequences, combining marks, full-width forms, the
# splitter's own markers (sentence ends, bullets, citations, abbreviations) and real Chinese text.
HOSTILE_PIECES = [
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\r", "\r\n", "\n", "\x0b", "\x0c",
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\ufeff", "\ufffd", "\ufffe", "\uffff",
    "\ud800", "\udfff", "\udbff", "\ue000", "\U0010ffff", "\U000e0001",
    "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1e8\U0001f1f3", "\u0301", "\u20dd",
    "\u3000", "\u2028", "\u2029", "\u00a0",
    "。", "！", "？", "；", ".", "!", ",", "，", "、", ":", "：", "”", "」", "）",
    "[5]", "[5][26] The", "[3,4]", "- ", "• ", "1. ", "1.5", "(2) ", "一、", "①",
    "ＡＢＣ", "１２３", "ﬁ", "㍿", "U.S.", "Inc. ", "3.5x", "J. Huang",
    "算力", "國產替代", "投資評級:買入(維持)", "公司业绩同比增长百分之三十", "维持买入评级。",
    "The company maintains a Buy rating. ", "加载中", "1 2 3 | 4 5 6", "\U00020000",
]  # fmt: skip
hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.characters(exclude_categories=())), max_size=60
).map("".join)
hostile_report = st.lists(hostile_text, max_size=8).map("\n".join)


def _clean(text: str) -> bool:
    """No control, format, surrogate, private-use or unassigned character except the line break."""
    return all(ch == "\n" or unicodedata.category(ch)[0] != "C" for ch in text)


def _assert_valid_tags(result: dict[str, Any]) -> None:
    assert set(result) >= {g.name for g in TAXONOMY}
    for g in TAXONOMY:
        tags = result[g.name]
        assert set(tags["scores"]) == set(g.labels)
        assert all(0.0 <= p <= 1.0 for p in tags["scores"].values())
        if g.multi_label:
            assert set(tags["labels"]) <= set(g.labels)
        else:
            assert tags["label"] in g.labels
            assert sum(tags["scores"].values()) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------- normaliser and splitter


@settings(max_examples=300, deadline=None, database=None)
@given(hostile_text)
def test_normalize_output_is_clean_mapped_and_idempotent(text):
    n = normalize(text)
    assert _clean(n.text)
    n.text.encode("utf-8")  # strict: no lone surrogate survives
    assert len(n.offsets) == len(n.text)
    assert all(0 <= o < len(text) for o in n.offsets) and list(n.offsets) == sorted(n.offsets)
    assert n.text == n.text.strip(" \n")
    assert normalize(n.text).text == n.text


@settings(max_examples=200, deadline=None, database=None)
@given(hostile_report)
# Found by this test: a combining mark right after a sentence's full stop belongs to the stop's grapheme,
# so the next sentence began inside the previous one.
@example("维持买入评级。\u0301國產替代")
@example("买入" * 80 + "，\u0301" + "增持" * 80)
def test_segment_sentences_are_clean_and_point_into_the_original(text):
    last = 0
    for s in segment(text).sentences:
        assert last <= s.start < s.end <= len(text)
        last = s.end
        assert s.original == text[s.start : s.end]
        assert s.text and "\n" not in s.text and _clean(s.text)
        assert s.kind in KINDS and s.lang in LANGS and s.id == sentence_id(s.text)


def test_empty_and_invisible_inputs():
    for text in ("", " ", "\n\r\n", "\u200b\ufeff\u202e", "\ud800\udfff", "\x00" * 100):
        assert normalize(text).text == ""
        assert segment(text).sentences == []


# ---------------------------------------------------------------- Tagger input handling


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_text, min_size=1, max_size=4))
def test_tagger_tag_answers_or_refuses_clearly(tagger, texts):
    if any(not normalize_text(t) for t in texts):
        with pytest.raises(ValueError, match="empty after normalisation"):
            tagger.tag(texts)
        return
    results = tagger.tag(texts)
    assert isinstance(results, list) and len(results) == len(texts)
    for r in results:
        _assert_valid_tags(r)
    single = tagger.tag(texts[0])
    assert isinstance(single, dict) and single["rating"]["label"] == results[0]["rating"]["label"]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_report)
def test_tagger_tag_report_answers_or_refuses_clearly(tagger, text):
    seg = segment(text)
    expected = seg.sentences
    if not expected:
        with pytest.raises(EmptyReportError, match="no sentences"):
            tagger.tag_report(text)
        return
    result = tagger.tag_report(text, report_id="hostile")
    assert [(s["start"], s["end"], s["text"], s["text_normalized"]) for s in result["sentences"]] == [
        (s.start, s.end, s.original, s.text) for s in expected
    ]
    for s in result["sentences"]:
        _assert_valid_tags(s)
    # Sentences but the title line's; each restated one is one of them and left out of the counts.
    headline = range(seg.title.index, seg.title.index + seg.title.units) if seg.title else range(0)
    counted = [i for i, s in enumerate(expected) if s.kind == "sentence" and i not in headline]
    summary = result["summary"]
    assert summary["sentences"] == len(counted) and set(summary["restated"]) <= set(counted)
    assert sum(summary["sentiment_counts"].values()) == len(counted) - len(summary["restated"])
    assert (summary["title"] or {}).get("text") == (seg.title.text if seg.title else None)


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["ok", 3], ("tuple",), {"inputs": "x"}])
def test_tagger_refuses_what_is_not_text(tagger, bad):
    with pytest.raises(TypeError, match="str"):
        tagger.tag(bad)
    if not isinstance(bad, list):
        with pytest.raises(TypeError, match="str"):
            tagger.tag_report(bad)


# ---------------------------------------------------------------- 1 MB lines


def _seconds(fn: Callable[[str], Any], text: str) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(text)
    return time.perf_counter() - started, result


PLAIN_MB = ("算力需求持续旺盛国产替代" * (ONE_MB // 12 + 1))[:ONE_MB]
ADVERSARIAL_MB = {
    # Both were quadratic before data/normalize.py was fixed (27 s and 9 s for normalize alone).
    "combining-marks": "a" + "\u0301" * (ONE_MB - 1),
    "citations": "[1]测" * (ONE_MB // 4),
}
MORE_ADVERSARIAL_MB = {
    "controls-and-bidi": ("\u202e\u200b\x00\x07测试👨\u200d👩\u200d👧" * (ONE_MB // 10))[:ONE_MB],
    "summary-breaks": "[1] A" * (ONE_MB // 5),
    "inline-bullets": "a - " * (ONE_MB // 4),
    "commas": "算力，" * (ONE_MB // 3),
    "sentences": "公司业绩增长。" * (ONE_MB // 7),
    "line-breaks": "\r\n" * (ONE_MB // 2),
    "spaced-cjk": "算 " * (ONE_MB // 2),
    "abbreviations": "Inc. " * (ONE_MB // 5),
}


def _assert_linear(shapes: dict[str, str]) -> None:
    """Each shape takes at most 10x (+2 s) the time of plain 1 MB Chinese, in the same run: a quadratic
    path takes 20-100x."""
    base_norm, _ = _seconds(normalize, PLAIN_MB)
    base_seg, _ = _seconds(segment, PLAIN_MB)
    for name, text in shapes.items():
        t_norm, n = _seconds(normalize, text)
        assert len(n.offsets) == len(n.text) and _clean(n.text)
        assert t_norm < 10 * base_norm + 2, f"{name}: normalize {t_norm:.1f} s vs {base_norm:.1f} s plain"
        t_seg, seg = _seconds(segment, text)
        assert all(s.original == text[s.start : s.end] for s in seg.sentences[:1000])
        assert t_seg < 10 * base_seg + 2, f"{name}: segment {t_seg:.1f} s vs {base_seg:.1f} s plain"


def test_one_megabyte_lines_stay_linear():
    _assert_linear(ADVERSARIAL_MB)


@pytest.mark.slow
def test_one_megabyte_lines_of_every_shape_stay_linear():
    _assert_linear(MORE_ADVERSARIAL_MB)


def test_tagger_on_a_one_megabyte_line(tagger):
    result = tagger.tag(PLAIN_MB)  # truncated to the model's length
    _assert_valid_tags(result)
    report = tagger.tag_report(PLAIN_MB)
    assert [(s["start"], s["end"]) for s in report["sentences"]] == [(0, ONE_MB)]
    with pytest.raises(EmptyReportError):
        tagger.tag_report(" \u200b" * (ONE_MB // 2))


# ---------------------------------------------------------------- the HTTP API, fuzzed


@pytest.fixture(scope="module")
def api(tagger: Tagger, tmp_path_factory) -> Iterator[tuple[FastAPI, TestClient]]:
    reviews = tmp_path_factory.mktemp("fuzz") / "reviews.jsonl"
    app = create_app(ServerSettings(max_items_per_request=64, reviews_file=str(reviews)), tagger)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client


def _documented(app: FastAPI) -> dict[tuple[str, str], set[int]]:
    return {
        (method.upper(), path): {int(code) for code in op["responses"]}
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    }


def _assert_answer(
    app: FastAPI, method: str, path: str, response: httpx.Response, sent: Any, seen: Counter[int]
) -> None:
    """No 5xx; every 4xx is the one error body with the status of its type; 200s have the schema's shape."""
    seen[response.status_code] += 1
    assert response.status_code < 500, (method, path, repr(sent)[:300], response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "error_type"}, body
        assert isinstance(body["error"], str) and body["error"]
        assert ERROR_STATUS.get(body["error_type"]) == response.status_code, body
        documented = _documented(app).get((method, path))
        if documented is not None:  # a route of the API (not a 404/405 for a path or method it lacks)
            assert response.status_code in documented, (method, path, response.status_code, body)
    elif (method, path) == ("POST", "/v1/tag"):
        got = TypeAdapter(SentenceTags | list[SentenceTags]).validate_python(response.json())
        inputs = sent.get("inputs") if isinstance(sent, dict) else None
        if isinstance(inputs, list):
            assert isinstance(got, list) and len(got) == len(inputs)
    elif (method, path) == ("POST", "/v1/tag-report"):
        TagReportResponse.model_validate(response.json())


def _send(client: TestClient, case: Any) -> tuple[httpx.Response, Any] | None:
    kw = case.as_transport_kwargs(base_url="http://testserver")
    body: dict[str, Any] = {}
    if "json" in kw:
        body["json"] = kw["json"]
    elif kw.get("data") is not None:
        data = kw["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogatepass")
    try:
        response = client.request(
            kw["method"], kw["url"], headers=kw["headers"], params=kw.get("params") or None, **body
        )
    except (UnicodeEncodeError, httpx.LocalProtocolError, ValueError):
        return None  # a header or body no HTTP client can send; it never reaches a server
    return response, body.get("json", body.get("content"))


# (method, path) -> (positive cases, negative cases), default run; the slow twin runs 6 times as many.
SCHEMA_BUDGET = {
    ("POST", "/v1/tag"): (60, 50),
    ("POST", "/v1/tag-report"): (40, 40),
    ("POST", "/v1/reviews"): (30, 30),
    ("GET", "/v1/reviews"): (5, 0),
    ("GET", "/healthz"): (5, 0),
    ("GET", "/readyz"): (5, 0),
    ("GET", "/metrics"): (5, 0),
}


def _run_cases(strategy: st.SearchStrategy[Any], examples: int, check: Callable[[Any], None]) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    run()


def _checker(
    app: FastAPI,
    client: TestClient,
    method: str,
    path: str,
    seen: Counter[int],
    also: Callable[[httpx.Response], None] | None = None,
) -> Callable[[Any], None]:
    def check(case: Any) -> None:
        answered = _send(client, case)
        if answered is not None:
            _assert_answer(app, method, path, *answered, seen)
            if also is not None:
                also(answered[0])

    return check


def _fuzz_from_schema(app: FastAPI, client: TestClient, scale: int) -> Counter[int]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    seen: Counter[int] = Counter()
    for (method, path), (positive, negative) in SCHEMA_BUDGET.items():
        operation = schema[path][method]
        for mode, n in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative)):
            if n:
                _run_cases(operation.as_strategy(mode), n * scale, _checker(app, client, method, path, seen))
    total = sum(p + n for p, n in SCHEMA_BUDGET.values()) * scale
    # Hypothesis stops early when a route has fewer distinct inputs than asked (the GET routes).
    assert sum(seen.values()) >= 0.7 * total, (total, seen)
    return seen


def test_api_fuzzed_from_its_openapi_schema(api):
    app, client = api
    seen = _fuzz_from_schema(app, client, scale=1)
    assert seen[200] > 0 and seen[422] > 0  # both valid and invalid requests were generated


@pytest.mark.slow
def test_api_fuzzed_from_its_openapi_schema_long(api):
    app, client = api
    seen = _fuzz_from_schema(app, client, scale=6)
    assert seen[200] > 0 and seen[422] > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
near_valid = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.one_of(hostile_text, st.lists(hostile_text, max_size=5), json_values)}
    ),
    st.fixed_dictionaries(
        {"text": st.one_of(hostile_report, json_values)},
        optional={"report_id": st.one_of(st.text(max_size=300), json_values)},
    ),
).map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
NASTY_BODIES = [
    b"", b"null", b"[]", b"{}", b'{"inputs": null}', b'{"inputs": [null]}', b'{"inputs": ["a"], "inputs": 1}',
    b"[" * 20_000 + b"]" * 20_000, b'{"inputs": ' + b"[" * 20_000, b'{"inputs": "\\ud800\\udfff\\u0000"}',
    b'\xef\xbb\xbf{"inputs": "\xe5\x85\xac\xe5\x8f\xb8"}', '{"inputs": "公司业绩增长"}'.encode("utf-16"),
    b'{"inputs": 1e999999}', b'{"inputs": "\xff\xfe\xfd"}', b'{"text": "' + "算力".encode() * 200_000 + b'"}',
    b'{"inputs": ["' + b"a" * 3000 + b'"]}', b'{"inputs": [' + b'"x",' * 300 + b'"x"]}',
]  # fmt: skip
malformed_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
    near_valid,
    st.tuples(near_valid, st.integers(0, 120), st.binary(max_size=4)).map(lambda t: t[0][: t[1]] + t[2]),
    st.sampled_from(NASTY_BODIES),
)
CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
    "multipart/form-data", "*/*", "application/json\x7f",
]  # fmt: skip
ROUTES = [("POST", "/v1/tag"), ("POST", "/v1/tag-report")]  # drawn four times as often as the odd targets
TARGETS = [
    ("POST", "/v1/tag"), ("POST", "/v1/tag-report"), ("PUT", "/v1/tag"), ("GET", "/v1/tag-report"),
    ("DELETE", "/healthz"), ("POST", "/metrics"), ("POST", "/v1/tag/"), ("POST", "/v1//tag"),
    ("PATCH", "/v1/tag"), ("POST", "/%ff%fe"), ("POST", "/v1/tag?inputs=x&inputs=y"),
]  # fmt: skip


def _fuzz_malformed(app: FastAPI, client: TestClient, examples: int) -> Counter[int]:
    seen: Counter[int] = Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        target=st.sampled_from(ROUTES * 4 + TARGETS),
        body=malformed_bodies,
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    def check(target: tuple[str, str], body: bytes, content_type: str | None) -> None:
        method, url = target
        headers = {} if content_type is None else {"content-type": content_type}
        try:
            response = client.request(method, url, content=body, headers=headers)
        except httpx.LocalProtocolError:
            return  # a header value no HTTP client can send
        _assert_answer(app, method, url.split("?")[0], response, body, seen)

    check()
    return seen


def test_api_survives_malformed_bodies(api):
    app, client = api
    seen = _fuzz_malformed(app, client, 150)
    assert sum(seen.values()) >= 140 and seen[422] > 0


@pytest.mark.slow
def test_api_survives_malformed_bodies_long(api):
    app, client = api
    seen = _fuzz_malformed(app, client, 900)
    assert sum(seen.values()) >= 850 and seen[422] > 0


def test_server_still_answers_after_the_fuzzing(api, tagger, sentences):
    _, client = api
    response = client.post("/v1/tag", json={"inputs": sentences[:3]})
    assert response.status_code == 200
    assert [r["rating"]["label"] for r in response.json()] == [
        r["rating"]["label"] for r in tagger.tag(sentences[:3])
    ]
    assert client.get("/readyz").status_code == 200


# ---------------------------------------------------------------- the API key


MODEL_ROUTES = [
    ("POST", "/v1/tag", {"json": {"inputs": "公司业绩增长"}}),
    ("POST", "/v1/tag-report", {"json": {"text": "公司业绩同比增长百分之三十，维持买入评级。"}}),
    ("GET", "/metrics", {}),
]
WRONG_CREDENTIALS = [
    {},
    {"Authorization": "Bearer " + "x" * len(API_KEY)},
    {"Authorization": f"Bearer {API_KEY[:-1]}"},
    {"Authorization": f"Bearer {API_KEY}x"},
    {"Authorization": f"Bearer {API_KEY.upper()}"},
    {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": API_KEY},
    {"Authorization": "Bearer "},
    {"X-API-Key": API_KEY},
]


def test_api_key_guards_every_model_route_is_compared_in_constant_time_and_never_logged(
    tagger, monkeypatch, caplog
):
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def recording_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare)
    caplog.set_level(logging.DEBUG)
    app = create_app(ServerSettings(api_key=API_KEY), tagger)
    with TestClient(app) as client:
        for method, path, kwargs in MODEL_ROUTES:
            for headers in WRONG_CREDENTIALS:
                response = client.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.json()["error_type"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
                assert API_KEY not in response.text
            response = client.request(method, path, params={"api_key": API_KEY}, **kwargs)
            assert response.status_code == 401  # a key in the query string is not accepted
            good = client.request(method, path, headers={"Authorization": f"Bearer {API_KEY}"}, **kwargs)
            assert good.status_code == 200, good.text
        assert app.state.fintag.batcher.model_calls == 2  # only the two requests with the right key
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200  # probes and the schema need no key
        security = app.openapi()["paths"]["/v1/tag"]["post"].get("security")
        assert security == [{"HTTPBearer": []}]
    # Every attempt that presented a Bearer token was checked with hmac.compare_digest against the key.
    assert compared and all(b == API_KEY.encode() for _, b in compared)
    assert API_KEY.encode() in {a for a, _ in compared}
    # The server side's records (the test client's own log shows the URL it was given, query included).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("fintag") for r in server)  # the capture did see the server's logging
    logged = "".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in server)
    assert API_KEY not in logged and API_KEY.upper() not in logged


def _refused_before_the_model(response: httpx.Response) -> None:
    assert response.status_code in (400, 401, 413, 422), response.text
    if response.status_code in (400, 422):  # only a body that is not JSON at all is judged before the key
        assert "could not be parsed" in response.text or "not valid JSON" in response.text, response.text


def test_fuzzing_without_the_key_never_reaches_the_model(tagger):
    app = create_app(ServerSettings(api_key=API_KEY), tagger)
    schema = schemathesis.openapi.from_dict(app.openapi())
    seen: Counter[int] = Counter()
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/v1/tag", "/v1/tag-report"):
            operation = schema[path]["POST"]
            # Cases without an Authorization header, or with a token schemathesis made up: never the key.
            # FastAPI decodes the JSON body before it runs the key check, so a body that is not JSON at all
            # gets its 400/422 first; a decodable one gets 401 whatever its fields.
            strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
                GenerationMode.NEGATIVE
            )
            _run_cases(strategy, 40, _checker(app, client, "POST", path, seen, _refused_before_the_model))
        assert app.state.fintag.batcher.model_calls == 0
    # Each case was checked above; the count only shows the key check was exercised, not a few cases.
    # (It was >= 60 of 80, which failed at random: 57 in one run, the rest being undecodable bodies.)
    assert set(seen) <= {400, 401, 413, 422} and seen[401] >= 40
