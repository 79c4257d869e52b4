"""The review loop over HTTP (`POST/GET /v1/reviews`, the reviews file) and the HTTP messages of issue 14
(non-JSON bodies, wrong methods, every route's body in the README), with the tiny real tagger injected."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fintag.data.normalize import normalize_text
from fintag.data.split import sentence_id
from fintag.serve.app import create_app
from fintag.serve.reviews import ReviewConflictError, ReviewStore, make_record, read_reviews, repair_torn_tail
from fintag.serve.schemas import Review, ReviewList
from fintag.serve.settings import ServerSettings
from fintag.serve.tagger import Tagger

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "r" * 24


def make_app(tagger: Tagger, reviews_file: Path, **settings: Any) -> FastAPI:
    return create_app(ServerSettings(reviews_file=str(reviews_file), **settings), tagger)


def review_body(tagger: Tagger, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "text": text,
        "report_id": "003_79c94fc73134dc31",
        "start": 10,
        "end": 10 + len(text),
        "sentiment": "negative",
        "themes": ["compute"],
        "rating": "none",
        "model": tagger.tag(text),
        **extra,
    }


def test_a_review_is_stored_in_the_label_format_and_listed(tagger, tmp_path, sentences):
    path = tmp_path / "reviews.jsonl"
    with TestClient(make_app(tagger, path)) as client:
        assert client.get("/v1/reviews").json() == {"count": 0, "reviews": []}
        response = client.post("/v1/reviews", json=review_body(tagger, sentences[5]))
        assert response.status_code == 201, response.text
        stored = response.json()
        listed = client.get("/v1/reviews").json()
    Review.model_validate(stored)
    ReviewList.model_validate(listed)
    assert listed["count"] == 1 and listed["reviews"] == [stored]
    text = normalize_text(sentences[5])
    # The dataset's label format: the sentence id of the normalised text, its report, the corrected labels.
    assert stored["id"] == sentence_id(text)
    assert (stored["text"], stored["report_id"]) == (text, "003_79c94fc73134dc31")
    assert (stored["sentiment"], stored["themes"], stored["rating"]) == ("negative", ["compute"], "none")
    assert stored["model"]["sentiment"]["label"] == tagger.tag(sentences[5])["sentiment"]["label"]
    assert stored["reviewed_at"].endswith("+00:00")
    assert read_reviews(path) == [stored]


def test_a_review_with_an_unknown_label_is_refused_and_not_stored(tagger, tmp_path):
    path = tmp_path / "reviews.jsonl"
    with TestClient(make_app(tagger, path)) as client:
        body = {**review_body(tagger, "公司维持买入评级。"), "rating": "hold"}
        response = client.post("/v1/reviews", json=body)
        assert response.status_code == 422
        assert "rating" in response.json()["error"]
    assert not path.exists()


def test_reviews_need_the_api_key_when_one_is_set(tagger, tmp_path):
    path = tmp_path / "reviews.jsonl"
    with TestClient(make_app(tagger, path, api_key=API_KEY)) as client:
        assert client.get("/v1/reviews").status_code == 401
        assert client.post("/v1/reviews", json=review_body(tagger, "公司维持买入评级。")).status_code == 401
        headers = {"Authorization": f"Bearer {API_KEY}"}
        ok = client.post("/v1/reviews", json=review_body(tagger, "公司维持买入评级。"), headers=headers)
        assert ok.status_code == 201
        assert client.get("/v1/reviews", headers=headers).json()["count"] == 1
    assert len(read_reviews(path)) == 1


def test_fifty_concurrent_reviews_are_all_stored_exactly_once(tagger, tmp_path, sentences):
    path = tmp_path / "reviews.jsonl"
    app = make_app(tagger, path)
    texts = sentences[:50]
    # Half of them sent twice with the same review_id (a client retrying): still stored once.
    bodies = [review_body(tagger, t, review_id=f"review-{i:04d}") for i, t in enumerate(texts)]

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                sends = [client.post("/v1/reviews", json=b) for b in bodies + bodies[:25]]
                return await asyncio.gather(*sends)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [201] * 75
    records = read_reviews(path)
    ids = [r["review_id"] for r in records]
    assert sorted(ids) == sorted(b["review_id"] for b in bodies)  # each exactly once, none lost
    assert len(path.read_bytes().splitlines()) == 50
    by_id = {r["review_id"]: r for r in records}
    assert all(by_id[b["review_id"]]["text"] == normalize_text(b["text"]) for b in bodies)


def test_a_torn_last_line_is_repaired_on_start_and_earlier_reviews_kept(tagger, tmp_path, sentences):
    """A server killed mid-write leaves an unterminated last line: the next start cuts it off (into
    `<file>.torn`), keeps every complete review and appends after them."""
    path = tmp_path / "reviews.jsonl"
    with TestClient(make_app(tagger, path)) as client:
        first = [client.post("/v1/reviews", json=review_body(tagger, t)).json() for t in sentences[:3]]
    whole = path.read_bytes()
    torn = json.dumps(review_body(tagger, sentences[3]), ensure_ascii=False).encode()[:57]
    path.write_bytes(whole + torn)
    with TestClient(make_app(tagger, path)) as client:
        assert path.read_bytes() == whole  # repaired before the first request
        listed = client.get("/v1/reviews").json()
        assert listed["reviews"] == first
        new = client.post("/v1/reviews", json=review_body(tagger, sentences[4])).json()
    assert read_reviews(path) == [*first, new]
    assert (tmp_path / "reviews.jsonl.torn").read_bytes() == torn + b"\n"
    assert repair_torn_tail(path) == 0  # a whole file is left alone


def test_the_store_indexes_reviews_written_by_another_process(tmp_path):
    """Two stores on one file (two `--workers`): a review_id stored by one is not stored by the other."""
    path = tmp_path / "reviews.jsonl"
    a, b = ReviewStore(path), ReviewStore(path)
    a.open()
    b.open()
    record = {"review_id": "same-review", "id": "x", "text": "t"}
    asyncio.run(a.append(record))
    again = asyncio.run(b.append(dict(record)))  # a retry through the other worker
    assert again == record
    with pytest.raises(ReviewConflictError, match=r"same-review.*text"):
        asyncio.run(b.append({**record, "text": "other"}))
    assert read_reviews(path) == [record]


def _review_line(text: str) -> str:
    record = make_record(
        {"text": text, "report_id": "r", "sentiment": "neutral", "themes": [], "rating": "none"}
    )
    return json.dumps(record, ensure_ascii=False) + "\n"


TAG_OUTPUT = {"type": "sentence", "path": "/r/003.txt", "sentence_index": 0, "text": "公司维持买入评级。"}


@pytest.mark.parametrize(
    ("lines", "line_no", "problem"),
    [
        # A `fintag tag` output file passed as --reviews_file (was: KeyError: 'review_id').
        (
            [json.dumps(TAG_OUTPUT, ensure_ascii=False) + "\n"],
            1,
            "without a review_id; it looks like `fintag tag`",
        ),
        # One line that is not JSON between two reviews (was: JSONDecodeError).
        (
            [_review_line("维持买入评级。"), "oops, a note\n", _review_line("算力需求旺盛。")],
            2,
            "not JSON: Expecting",
        ),
        ([_review_line("维持买入评级。"), "[1, 2]\n"], 2, "JSON list, not an object"),
        # A bad line before a torn last line: the torn line alone would be cut off, the bad one is refused.
        ([_review_line("维持买入评级。"), "{}\n", '{"review_id": "torn'], 2, "without a review_id"),
    ],
    ids=["tag-output", "not-json-in-the-middle", "not-an-object", "bad-line-then-torn-tail"],
)
def test_serve_refuses_a_reviews_file_with_a_line_that_is_not_a_review(
    tiny_checkpoint_dir, tmp_path, monkeypatch, caplog, lines, line_no, problem
):
    from fintag.serve.app import serve_main

    for name in [k for k in os.environ if k.startswith("FINTAG_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    code = serve_main(["--model", str(tiny_checkpoint_dir), "--reviews_file", str(path), "--port", "1"])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    want = f"reviews file {path} line {line_no} is not a review ("
    assert any(want in e and problem in e and "fix or move it" in e for e in errors), errors
    assert "Traceback" not in caplog.text


def test_a_torn_tail_left_by_a_failed_write_is_cut_before_the_next_append(tmp_path):
    """A write that failed half-way (disk full) leaves an unterminated line while the server runs on: the
    next review must not be glued to it (both would be lost, and the file refused at the next start)."""
    path = tmp_path / "reviews.jsonl"
    path.write_text(_review_line("维持买入评级。"), encoding="utf-8")
    store = ReviewStore(path)
    store.open()
    fragment = _review_line("算力需求旺盛。").encode()[:40]
    with path.open("ab") as fh:
        fh.write(fragment)
    record = make_record(
        {"text": "国产替代加速。", "report_id": "r", "sentiment": "positive", "themes": [], "rating": "none"}
    )
    asyncio.run(store.append(record))
    assert [r["text"] for r in read_reviews(path)] == ["维持买入评级。", "国产替代加速。"]
    assert (tmp_path / "reviews.jsonl.torn").read_bytes() == fragment + b"\n"
    ReviewStore(path).open()  # the next start takes the file


def test_a_line_that_is_not_a_review_added_while_serving_is_a_500_naming_it(tagger, tmp_path):
    path = tmp_path / "reviews.jsonl"
    with TestClient(make_app(tagger, path)) as client:
        assert client.post("/v1/reviews", json=review_body(tagger, "维持买入评级。")).status_code == 201
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(TAG_OUTPUT, ensure_ascii=False) + "\n")
        response = client.post("/v1/reviews", json=review_body(tagger, "算力需求旺盛。"))
    assert response.status_code == 500 and response.json()["error_type"] == "backend"
    assert f"{path} line 2 is not a review" in response.json()["error"], response.text


def test_a_retry_that_changes_the_correction_is_a_409_and_the_first_is_kept(tagger, tmp_path, sentences):
    path = tmp_path / "reviews.jsonl"
    body = review_body(tagger, sentences[3], review_id="retry-0001", sentiment="positive", rating="buy")
    with TestClient(make_app(tagger, path)) as client:
        first = client.post("/v1/reviews", json=body)
        assert first.status_code == 201, first.text
        same = client.post("/v1/reviews", json=body)
        assert same.status_code == 201 and same.json() == first.json()
        changed = client.post("/v1/reviews", json={**body, "sentiment": "negative", "rating": "sell"})
    assert changed.status_code == 409
    error = changed.json()
    assert error["error_type"] == "conflict"
    assert (
        "retry-0001" in error["error"]
        and "sentiment, rating" in error["error"]
        and "new review_id" in error["error"]
    )
    assert read_reviews(path) == [first.json()]


@pytest.mark.parametrize(
    "offsets,named",
    [({"start": 10, "end": 2}, "greater than start"), ({"start": 5, "end": 5}, "greater than start")],
)  # fmt: skip
def test_offsets_that_make_no_span_are_a_422_and_not_stored(tagger, tmp_path, offsets, named):
    path = tmp_path / "reviews.jsonl"
    body = {"text": "维持买入评级。", "sentiment": "neutral", "themes": [], "rating": "buy", **offsets}
    with TestClient(make_app(tagger, path)) as client:
        response = client.post("/v1/reviews", json=body)
    assert response.status_code == 422 and named in response.json()["error"], response.text
    assert not path.exists() or read_reviews(path) == []


# --- issue 14: HTTP messages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tagger, tmp_path_factory):
    with TestClient(make_app(tagger, tmp_path_factory.mktemp("rev") / "reviews.jsonl")) as c:
        yield c


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"data": {"inputs": "公司维持买入评级。"}}, "application/x-www-form-urlencoded"),
        (
            {"content": "公司维持买入评级。".encode(), "headers": {"Content-Type": "text/plain"}},
            "text/plain",
        ),
    ],
)
def test_a_non_json_body_gets_a_message_naming_its_content_type(client, kwargs, named):
    for route in ("/v1/tag", "/v1/tag-report", "/v1/reviews"):
        response = client.post(route, **kwargs)
        assert response.status_code == 422
        message = response.json()["error"]
        assert named in message and "Content-Type application/json" in message
        assert "valid dictionary" not in message


def test_the_page_answers_head_as_monitors_ask(client):
    got, head = client.get("/"), client.head("/")
    assert got.status_code == head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/html")
    assert head.headers["content-length"] == str(len(got.content))


def test_a_wrong_method_gets_a_message_naming_the_right_one(client):
    response = client.get("/v1/tag")
    assert response.status_code == 405
    assert response.json()["error_type"] == "method_not_allowed"
    message = response.json()["error"]
    assert "/v1/tag does not take GET" in message and "POST" in message and "/docs" in message
    assert response.headers["allow"] == "POST"


def test_the_readme_documents_every_route_and_its_body(client):
    """Every route of the OpenAPI document is in the README, each POST route with its body's fields."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert re.search(rf"`{method.upper()} {re.escape(path)}[`?]", readme), f"{method} {path}"
            content = op.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                for field in schemas[ref.rsplit("/", 1)[1]]["properties"]:
                    assert f"`{field}`" in readme, f"{method} {path}: body field {field}"


def test_docs_are_served_without_a_cdn(client):
    html = client.get("/docs").text
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset
    assert len(re.findall(r'(?:src|href)="(/static/[^"]+)"', html)) >= 2


def test_read_report_decodes_gb18030_and_names_a_bad_file(client):
    text = "公司维持买入评级。算力需求持续增长。"
    ok = client.post("/v1/read-report?filename=r.txt", content=text.encode("gb18030"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["text"].strip() == text and ok.json()["report_id"] == "r"
    bad = client.post("/v1/read-report?filename=r.pdf", content=b"not a pdf at all")
    assert bad.status_code == 422
    assert "r.pdf" in bad.json()["error"] and "not a PDF" in bad.json()["error"]
    docx = client.post("/v1/read-report?filename=r.docx", content=b"PK\x03\x04")
    assert docx.status_code == 422 and "not a readable .docx" in docx.json()["error"]
    doc = client.post("/v1/read-report?filename=r.doc", content=b"\xd0\xcf\x11\xe0")
    assert "unsupported file type '.doc'" in doc.json()["error"] and "save it as .docx" in doc.json()["error"]
    page = "<html><meta charset='gbk'><body><p>公司维持买入评级。</p><p>算力需求持续增长。</p></body></html>"
    html = client.post("/v1/read-report?filename=r.html", content=page.encode("gbk"))
    assert html.status_code == 200 and html.json()["text"] == text.replace("。", "。\n", 1)
    assert html.json()["encoding"] == "gb18030"


def test_the_page_takes_every_kind_of_file_the_reader_reads(client):
    from fintag.data.reader import SUPPORTED_SUFFIXES

    accept = re.search(r'accept="([^"]+)"', client.get("/").text)
    assert accept is not None and accept.group(1).split(",") == list(SUPPORTED_SUFFIXES)
    assert {".docx", ".html", ".pdf"} <= set(SUPPORTED_SUFFIXES)


def test_a_review_with_a_lone_surrogate_or_a_huge_offset_is_a_422(client):
    base = {"text": "维持买入评级。", "sentiment": "neutral", "themes": [], "rating": "buy"}
    body = json.dumps({**base, "text": "维持\ud800评级"}, ensure_ascii=True)
    response = client.post("/v1/reviews", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "body.text" in response.json()["error"]
    response = client.post("/v1/reviews", json={**base, "end": 2**64})
    assert response.status_code == 422 and "end" in response.json()["error"]


def test_serve_with_workers_refuses_a_bad_reviews_file_before_starting_any(
    tiny_checkpoint_dir, tmp_path, monkeypatch, caplog
):
    import socket

    from fintag.serve.app import serve_main

    for name in [k for k in os.environ if k.startswith("FINTAG_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "reviews.jsonl"
    path.write_text(_review_line("维持买入评级。") + "oops, a note\n", encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--model", str(tiny_checkpoint_dir), "--reviews_file", str(path), "--port", str(port)]
    assert serve_main([*args, "--workers", "2"]) == 2  # was: a traceback per worker, exit 1
    assert f"reviews file {path} line 2 is not a review" in caplog.text and "Traceback" not in caplog.text
