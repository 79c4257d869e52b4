"""The HTTP endpoint (`fintag.serve.app`) and its micro-batcher, with the tiny real tagger injected."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fintag.data.taxonomy import RATING, SENTIMENT, TAXONOMY, THEMES
from fintag.serve.app import SentenceTags, TagReportResponse, create_app
from fintag.serve.batching import BatcherClosedError, BatchLimits, MicroBatcher
from fintag.serve.errors import ERROR_STATUS
from fintag.serve.settings import ServerSettings, SettingsError, load_settings
from fintag.serve.tagger import Tagger
from prometheus_client.parser import text_string_to_metric_families

API_KEY = "k" * 24


# --- helpers ----------------------------------------------------------------------------------------------


def make_app(tagger: Tagger, **settings: Any) -> FastAPI:
    return create_app(ServerSettings(**settings), tagger)


def assert_same_tags(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Same labels; scores equal up to float noise (a batch pads differently from another)."""
    assert set(got) == {g.name for g in TAXONOMY}
    for g in TAXONOMY:
        key = "labels" if g.multi_label else "label"
        assert got[g.name][key] == want[g.name][key]
        assert got[g.name]["scores"] == pytest.approx(want[g.name]["scores"], abs=1e-4)


def assert_schema(model: Any, got: Any) -> None:
    """`got` is exactly what the published response model describes: it validates, and dumping the validated
    model gives `got` back (no missing or extra keys, no value the model would coerce)."""
    assert model.model_validate(got).model_dump(mode="json") == got


def assert_error(response: httpx.Response, error_type: str) -> None:
    assert response.status_code == ERROR_STATUS[error_type], response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    assert body["error"]
    assert "Traceback" not in response.text


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def run_with_client(app: FastAPI, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run `scenario` against the app, lifespan included, with an async client (concurrent requests)."""

    async def main() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await scenario(client)

    return asyncio.run(main())


class GatedTagger(Tagger):
    """The tiny tagger, but each model call waits until the test opens the gate."""

    def __init__(self, base: Tagger) -> None:
        super().__init__(base.model, base.tokenizer, base.thresholds)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def tag_normalized(self, texts: list[str]) -> list[dict[str, Any]]:
        self.entered.set()
        if not self.gate.wait(timeout=20):
            raise TimeoutError("the test never opened the gate")
        return super().tag_normalized(texts)


class FailingTagger(Tagger):
    """The tiny tagger whose model call raises (the one fault-injection wrapper)."""

    def __init__(self, base: Tagger) -> None:
        super().__init__(base.model, base.tokenizer, base.thresholds)

    def tag_normalized(self, texts: list[str]) -> list[dict[str, Any]]:
        raise RuntimeError("secret internal detail")


@pytest.fixture(scope="module")
def client(tagger):
    with TestClient(make_app(tagger)) as c:
        yield c


# --- shapes -----------------------------------------------------------------------------------------------


def test_tag_one_sentence_returns_a_dict_like_tagger_tag(client, tagger, sentences):
    response = client.post("/v1/tag", json={"inputs": sentences[3]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    got = response.json()
    assert isinstance(got, dict)
    assert_schema(SentenceTags, got)
    assert_same_tags(got, tagger.tag(sentences[3]))
    assert got["sentiment"]["label"] in SENTIMENT.labels
    assert set(got["themes"]["labels"]) <= set(THEMES.labels)
    assert got["rating"]["label"] in RATING.labels


def test_tag_list_returns_a_list_in_order(client, tagger, sentences):
    inputs = sentences[10:17]
    response = client.post("/v1/tag", json={"inputs": inputs})
    assert response.status_code == 200
    got = response.json()
    assert isinstance(got, list) and len(got) == len(inputs)
    for g, w in zip(got, tagger.tag(inputs), strict=True):
        assert_schema(SentenceTags, g)
        assert_same_tags(g, w)
    assert client.post("/v1/tag", json={"inputs": []}).json() == []


def test_tag_report_matches_tagger_tag_report(client, tagger, sentences):
    title = "中芯国际(688981)三季报点评:产能利用率维持高位"
    restated = "综上,公司三季度营收同比增长18%,产能利用率提升至95%。"
    text = "\n".join([title, restated[3:], *sentences[20:30], restated])
    response = client.post("/v1/tag-report", json={"text": text, "report_id": "r-1"})
    assert response.status_code == 200
    got = response.json()
    want = tagger.tag_report(text, report_id="r-1")
    assert_schema(TagReportResponse, got)
    assert got["report_id"] == "r-1"
    assert [(s["text"], s["start"], s["end"]) for s in got["sentences"]] == [
        (s["text"], s["start"], s["end"]) for s in want["sentences"]
    ]
    for g, w in zip(got["sentences"], want["sentences"], strict=True):
        assert_same_tags({k: g[k] for k in ("sentiment", "themes", "rating")}, w)
    # Every sentence but the title line, the report's headline (kind sentence, never counted).
    assert want["sentences"][0]["kind"] == "sentence"
    assert got["summary"]["sentences"] == sum(s["kind"] == "sentence" for s in want["sentences"]) - 1
    assert got["summary"] == want["summary"]
    assert got["summary"]["rating"]["label"] == want["summary"]["rating"]["label"]
    assert got["summary"]["title"] == {"text": title, "index": 0, "units": 1}
    assert got["summary"]["restated"] == [len(got["sentences"]) - 1]
    assert set(got["summary"]["theme_share"]) == set(THEMES.labels)


def test_a_unit_longer_than_tag_s_sentence_limit_can_be_reviewed(tagger, tmp_path):
    """/v1/tag-report returns a unit as long as the splitter leaves it (it cuts only at commas); its review
    is stored (was: 422 at 2,000 characters, "Not saved" on the page). The limits come from one constant."""
    from fintag.serve.schemas import MAX_TEXT_CHARS, ReviewRequest, TagReportRequest

    text = "公司维持买入评级" + "算力需求持续增长带动收入" * 250 + "。"
    # A body limit above the text limit, so that the text limit is what refuses the over-long review.
    app = make_app(tagger, reviews_file=str(tmp_path / "reviews.jsonl"), max_body_bytes=2 * MAX_TEXT_CHARS)
    with TestClient(app) as c:
        tagged = c.post("/v1/tag-report", json={"text": text, "report_id": "long"})
        assert tagged.status_code == 200, tagged.text
        unit = max(tagged.json()["sentences"], key=lambda u: len(u["text"]))
        assert len(unit["text"]) > ServerSettings().max_chars_per_item
        review = {
            "text": unit["text"], "report_id": "long", "start": unit["start"], "end": unit["end"],
            "sentiment": "positive", "themes": [], "rating": "buy",
        }  # fmt: skip
        stored = c.post("/v1/reviews", json=review)
        assert stored.status_code == 201, stored.text
        too_long = c.post("/v1/reviews", json={**review, "text": "x" * (MAX_TEXT_CHARS + 1)})
        assert_error(too_long, "validation")
    for model in (ReviewRequest, TagReportRequest):
        assert model.model_json_schema()["properties"]["text"]["maxLength"] == MAX_TEXT_CHARS
    with pytest.raises(SettingsError, match="--max_chars_per_item"):
        load_settings(["--max_chars_per_item", str(MAX_TEXT_CHARS + 1)])


def test_openapi_schema_is_generated_from_the_taxonomy(client):
    assert client.get("/docs").status_code == 200
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["SentimentTag"]["properties"]["label"]["enum"] == list(SENTIMENT.labels)
    assert schemas["RatingTag"]["properties"]["label"]["enum"] == list(RATING.labels)
    assert schemas["ThemesTags"]["properties"]["labels"]["items"]["enum"] == list(THEMES.labels)
    assert set(schemas["SentenceTags"]["properties"]) == {g.name for g in TAXONOMY}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_healthz_and_readyz_answer_head_as_uptime_monitors_ask(client, tiny_checkpoint_dir):
    for path in ("/healthz", "/readyz"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-length"] == str(len(got.content))
    # The OpenAPI document (and so the README's route table) lists each probe's GET only.
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/healthz"]) == set(paths["/readyz"]) == {"get"}
    not_ready = TestClient(create_app(ServerSettings(model=str(tiny_checkpoint_dir))))  # no lifespan
    assert not_ready.head("/healthz").status_code == 200
    assert not_ready.head("/readyz").status_code == 503


# --- errors -----------------------------------------------------------------------------------------------


def test_body_too_large_is_413_by_content_length_and_by_bytes(tagger):
    with TestClient(make_app(tagger, max_body_bytes=300)) as c:
        big = {"inputs": ["算力需求持续增长。" * 10] * 3}
        assert_error(c.post("/v1/tag", json=big), "validation_too_large")
        # No Content-Length (chunked): the bytes actually received are counted.
        chunks = (json.dumps(big, ensure_ascii=False).encode()[i : i + 50] for i in range(0, 2000, 50))
        assert_error(
            c.post("/v1/tag", content=chunks, headers={"content-type": "application/json"}),
            "validation_too_large",
        )
        assert c.post("/v1/tag", json={"inputs": "算力需求持续增长。"}).status_code == 200


def test_uploads_have_their_own_limit_and_each_413_names_the_flag_that_raises_it(tagger, monkeypatch):
    """A report file bigger than the JSON body limit is read (was: 413 "send fewer or shorter texts"); over
    --max_upload_bytes it is refused with that flag and the advice for a file; the JSON routes' 413s name
    --max_body_bytes with the advice for their route."""
    from fintag.data.reader import MAX_FILE_BYTES

    for name in [k for k in os.environ if k.startswith("FINTAG_")]:
        monkeypatch.delenv(name)
    report = ("公司维持买入评级。" * 100).encode("gb18030")  # 1,800 bytes
    with TestClient(make_app(tagger, max_body_bytes=300, max_upload_bytes=len(report) + 100)) as c:
        ok = c.post("/v1/read-report?filename=r.txt", content=report)
        assert ok.status_code == 200, ok.text
        assert ok.json()["text"].startswith("公司维持买入评级。")
        too_big = report * 2
        chunks = (too_big[i : i + 500] for i in range(0, len(too_big), 500))  # no Content-Length
        for body in (too_big, chunks):
            response = c.post("/v1/read-report?filename=r.txt", content=body)
            assert_error(response, "validation_too_large")
            message = response.json()["error"]
            assert "--max_upload_bytes" in message and "FINTAG_MAX_UPLOAD_BYTES" in message, message
            assert "uploaded file" in message and "smaller files" in message, message
            assert "max_body_bytes" not in message and "texts per request" not in message, message
        tag = c.post("/v1/tag", json={"inputs": ["算力需求持续增长。" * 10] * 3})
        assert_error(tag, "validation_too_large")
        assert "--max_body_bytes" in tag.json()["error"] and "fewer or shorter texts" in tag.json()["error"]
        report_text = c.post("/v1/tag-report", json={"text": "算力需求持续增长。" * 30})
        assert_error(report_text, "validation_too_large")
        assert "--max_body_bytes" in report_text.json()["error"] and "in parts" in report_text.json()["error"]
    # The default takes a broker PDF of a few MB, and the setting cannot exceed what the reader takes.
    assert 1_851_800 < ServerSettings().max_upload_bytes <= MAX_FILE_BYTES
    with pytest.raises(SettingsError, match="--max_upload_bytes"):
        load_settings(["--max_upload_bytes", str(MAX_FILE_BYTES + 1)])
    assert load_settings(["--max_upload_bytes", "1234"]).max_upload_bytes == 1234


def test_too_many_items_and_too_long_items_are_413(tagger):
    with TestClient(make_app(tagger, max_items_per_request=3, max_chars_per_item=20)) as c:
        assert_error(c.post("/v1/tag", json={"inputs": ["公司业绩增长"] * 4}), "validation_too_large")
        response = c.post("/v1/tag", json={"inputs": ["短句", "长" * 21]})
        assert_error(response, "validation_too_large")
        assert "input 1" in response.json()["error"]
        assert c.post("/v1/tag", json={"inputs": ["公司业绩增长"] * 3}).status_code == 200


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/tag", {"inputs": 5}),
        ("/v1/tag", {"inputs": ["ok", 3]}),
        ("/v1/tag", {"input": "typo in the field name"}),
        ("/v1/tag", {}),
        ("/v1/tag", ["not", "an", "object"]),
        ("/v1/tag", {"inputs": ["  ", "\u200b"]}),  # empty after normalisation
        ("/v1/tag-report", {"text": 12}),
        ("/v1/tag-report", {"text": "1 2 3 | 4 5 6"}),  # nothing left after the splitter's filtering
    ],
)
def test_wrong_types_and_empty_inputs_are_422(client, path, payload):
    assert_error(client.post(path, json=payload), "validation")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"inputs": ["a"', "Expecting"),  # truncated (was: 422 validation)
        (b'{"inputs": ["a",', "Expecting"),
        ('{"inputs": ["公司维持买入评级"]}'.encode("gbk"), "not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ],
    ids=["truncated", "trailing-comma", "gbk", "deeply-nested"],
)
def test_every_unparseable_body_is_400_with_the_same_message(client, body, named):
    for route in ("/v1/tag", "/v1/tag-report", "/v1/reviews"):
        response = client.post(route, content=body, headers={"content-type": "application/json"})
        assert_error(response, "bad_request")
        message = response.json()["error"]
        assert message.startswith("the request body is not valid JSON (") and named in message, message
        assert "UTF-8 with Content-Type application/json" in message, message


def test_malformed_json_names_where_it_breaks(client):
    # Where it breaks, so a client can find the mistake (json.loads' message has no position of its own).
    response = client.post(
        "/v1/tag", content=b'{"inputs": ["abc]}', headers={"content-type": "application/json"}
    )
    assert "Unterminated string starting at character 12" in response.json()["error"], response.text


def test_unknown_route_uses_the_error_body(client):
    assert_error(client.get("/v2/nothing"), "not_found")
    assert_error(client.get("/v1/tag"), "method_not_allowed")


def test_api_key_guards_model_routes_but_not_healthz(tagger):
    with TestClient(make_app(tagger, api_key=API_KEY)) as c:
        assert_error(c.post("/v1/tag", json={"inputs": "公司业绩增长"}), "unauthorized")
        wrong = {"Authorization": "Bearer " + "x" * 24}
        assert_error(c.post("/v1/tag", json={"inputs": "公司业绩增长"}, headers=wrong), "unauthorized")
        assert_error(c.post("/v1/tag-report", json={"text": "公司业绩增长。"}, headers=wrong), "unauthorized")
        assert_error(c.get("/metrics"), "unauthorized")
        good = {"Authorization": f"Bearer {API_KEY}"}
        assert c.post("/v1/tag", json={"inputs": "公司业绩增长"}, headers=good).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_model_not_loaded_is_503(tiny_checkpoint_dir):
    app = create_app(ServerSettings(model=str(tiny_checkpoint_dir)))
    c = TestClient(app)  # no `with`: the lifespan (which loads the model) never runs
    assert c.get("/healthz").status_code == 200
    assert_error(c.get("/readyz"), "unhealthy")
    assert_error(c.post("/v1/tag", json={"inputs": "公司业绩增长"}), "unhealthy")
    assert_error(c.post("/v1/tag-report", json={"text": "公司业绩增长。"}), "unhealthy")


def test_model_loads_in_the_background_then_ready(tiny_checkpoint_dir, tagger):
    app = create_app(ServerSettings(model=str(tiny_checkpoint_dir), model_pass_tokens=512))
    with TestClient(app) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load within 60 s"
            time.sleep(0.1)
        assert app.state.fintag.tagger.max_tokens == 512
        got = c.post("/v1/tag", json={"inputs": "公司维持买入评级"}).json()
        assert_same_tags(got, tagger.tag("公司维持买入评级"))


def test_failed_model_call_is_500_without_details(tagger):
    with TestClient(make_app(FailingTagger(tagger))) as c:
        response = c.post("/v1/tag", json={"inputs": ["公司业绩增长"]})
        assert_error(response, "backend")
        assert "secret internal detail" not in response.text
        assert c.get("/healthz").status_code == 200


def test_full_queue_is_429(tagger):
    gated = GatedTagger(tagger)
    app = make_app(gated, max_queue=1, max_wait_ms=0)

    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, ...]:
        first = asyncio.create_task(client.post("/v1/tag", json={"inputs": "公司业绩增长"}))
        assert await asyncio.to_thread(gated.entered.wait, 20), "the first request never reached the model"
        second = asyncio.create_task(client.post("/v1/tag", json={"inputs": "算力需求旺盛"}))
        batcher = app.state.fintag.batcher
        for _ in range(500):  # until the second request waits in the queue
            if batcher.depth == 1:
                break
            await asyncio.sleep(0.01)
        assert batcher.depth == 1
        metrics = metric_samples((await client.get("/metrics")).text)
        assert metrics[("fintag_queue_depth", ())] == 1
        third = await client.post("/v1/tag", json={"inputs": "国产替代加速"})
        gated.gate.set()
        return await first, await second, third

    first, second, third = run_with_client(app, scenario)
    assert_error(third, "overloaded")
    assert third.headers["retry-after"] == "1"
    assert first.status_code == 200 and second.status_code == 200


# --- micro-batching ---------------------------------------------------------------------------------------


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(tagger, sentences):
    app = make_app(tagger, max_wait_ms=200, max_batch_size=64)
    requests = [sentences[2 * i : 2 * i + 1 + i % 3] for i in range(16)]

    async def scenario(client: httpx.AsyncClient) -> tuple[list[httpx.Response], str]:
        responses = await asyncio.gather(*(client.post("/v1/tag", json={"inputs": r}) for r in requests))
        return list(responses), (await client.get("/metrics")).text

    responses, metrics = run_with_client(app, scenario)
    for inputs, response in zip(requests, responses, strict=True):
        assert response.status_code == 200
        got = response.json()
        assert len(got) == len(inputs)
        for g, w in zip(got, tagger.tag(inputs), strict=True):
            assert_same_tags(g, w)
    samples = metric_samples(metrics)
    model_calls = samples[("fintag_model_batch_size_count", ())]
    assert 1 <= model_calls < len(requests)
    assert samples[("fintag_model_batch_size_sum", ())] == sum(len(r) for r in requests)
    assert samples[("fintag_http_requests_total", (("route", "/v1/tag"), ("status", "200")))] == 16


def test_batcher_respects_size_and_token_limits_and_keeps_order(tagger, sentences):
    calls: list[list[str]] = []

    def predict(texts: list[str]) -> list[dict[str, Any]]:
        calls.append(list(texts))
        return tagger.tag_normalized(texts)

    limits = BatchLimits(max_batch_size=4, max_batch_tokens=150, max_wait_ms=50, max_queue=8)
    inputs = [sentences[:10], sentences[10:13], sentences[13:14]]

    async def main() -> list[list[dict[str, Any]]]:
        batcher: MicroBatcher[dict[str, Any]] = MicroBatcher(predict, limits, cost=len)
        batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit(x) for x in inputs)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    for texts, got in zip(inputs, results, strict=True):
        for g, w in zip(got, tagger.tag(texts), strict=True):
            assert_same_tags(g, w)
    assert sum(len(c) for c in calls) == 14
    assert all(len(c) <= 4 for c in calls)
    assert all(len(c) == 1 or sum(map(len, c)) <= 150 for c in calls)


def test_batcher_close_drains_the_queue_then_refuses(tagger, sentences):
    limits = BatchLimits(max_batch_size=2, max_batch_tokens=10_000, max_wait_ms=1000, max_queue=16)

    async def main() -> tuple[list[list[dict[str, Any]]], bool]:
        batcher: MicroBatcher[dict[str, Any]] = MicroBatcher(tagger.tag_normalized, limits)
        batcher.start()
        pending = [asyncio.create_task(batcher.submit(sentences[i : i + 3])) for i in range(6)]
        await asyncio.sleep(0)  # let every request reach the queue
        await batcher.close()  # must not wait max_wait_ms, and must answer all six
        try:
            await batcher.submit(["more"])
        except BatcherClosedError:
            refused = True
        else:
            refused = False
        return [p.result() for p in pending], refused

    started = time.monotonic()
    results, refused = asyncio.run(main())
    assert time.monotonic() - started < 10
    assert [len(r) for r in results] == [3] * 6
    assert refused


# --- metrics ----------------------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_and_status(tagger):
    with TestClient(make_app(tagger)) as c:
        c.post("/v1/tag", json={"inputs": ["公司业绩增长", "算力需求旺盛"]})
        c.post("/v1/tag", json={"inputs": 5})
        c.get("/nowhere")
        text = c.get("/metrics").text
    samples = metric_samples(text)
    assert samples[("fintag_http_requests_total", (("route", "/v1/tag"), ("status", "200")))] == 1
    assert samples[("fintag_http_requests_total", (("route", "/v1/tag"), ("status", "422")))] == 1
    assert samples[("fintag_http_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert samples[("fintag_model_batch_size_sum", ())] == 2
    assert ("fintag_queue_depth", ()) in samples
    assert samples[("fintag_http_request_duration_seconds_count", (("route", "/v1/tag"),))] == 2


# --- settings ---------------------------------------------------------------------------------------------


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("FINTAG_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("FINTAG_MAX_WAIT_MS", "3")
    settings = load_settings(["--max_batch_size", "9"])
    assert settings.max_batch_size == 9
    assert settings.max_wait_ms == 3
    assert settings.host == "127.0.0.1"


def test_bad_settings_are_refused_with_the_flag_named(monkeypatch, tmp_path):
    monkeypatch.setenv("FINTAG_API_KEY", "short-secret")
    with pytest.raises(SettingsError) as info:
        load_settings(["--max_batch_size", "0", "--port", "70000", "--model", str(tmp_path / "missing")])
    message = str(info.value)
    for name in ("--max_batch_size", "--port", "--model", "FINTAG_API_KEY"):
        assert name in message
    assert "short-secret" not in message  # a secret is never repeated


# --- a real server --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`fintag serve ARGS` in a subprocess, its output in a log file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fintag.serve.cli", "serve", *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    return proc, log_path


def _wait_until_ready(http: httpx.Client, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until /readyz answers 200 and /metrics says every worker has its model."""
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "server not ready in 90 s:\n" + log_path.read_text()
        try:
            if (
                http.get("/readyz").status_code == 200
                and metric_samples(http.get("/metrics").text)[("fintag_model_ready", ())] == 1
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_real_uvicorn_server_answers_and_stops_on_sigterm(tiny_checkpoint_dir, tagger, tmp_path):
    port = _free_port()
    proc, log_path = _start_serve(["--model", str(tiny_checkpoint_dir), "--port", str(port)], tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as http:
            _wait_until_ready(http, proc, log_path)
            response = http.post("/v1/tag", json={"inputs": ["公司维持买入评级", "算力需求旺盛"]})
            assert response.status_code == 200
            for g, w in zip(response.json(), tagger.tag(["公司维持买入评级", "算力需求旺盛"]), strict=True):
                assert_same_tags(g, w)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        _stop(proc)
    log_text = log_path.read_text()
    assert "Application shutdown complete" in log_text
    assert f"serving on http://127.0.0.1:{port}" in log_text
    assert "Traceback" not in log_text


def test_a_port_in_use_is_named_with_the_fix_exit_2_before_the_model_loads(
    tiny_checkpoint_dir, tmp_path, monkeypatch, caplog
):
    """Was: only uvicorn's "[Errno 98] address already in use", the model loading on for seconds after
    "Application shutdown complete", SystemExit(3). Now the address is bound before anything starts."""
    import logging

    from fintag.serve.app import serve_main

    for name in [k for k in os.environ if k.startswith("FINTAG_")]:
        monkeypatch.delenv(name)
    loads: list[str] = []
    monkeypatch.setattr(Tagger, "load", classmethod(lambda cls, *a, **k: loads.append(str(a)) or None))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    caplog.set_level(logging.INFO)
    args = ["--model", str(tiny_checkpoint_dir), "--reviews_file", str(tmp_path / "reviews.jsonl")]
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            started = time.monotonic()
            code = serve_main([*args, "--port", str(port)])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 2 and time.monotonic() - started < 10  # as with --workers (test below)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(
        f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in e
        and "another --port" in e
        and "stop the server" in e
        for e in errors
    ), errors
    assert loads == [] and "loading model" not in caplog.text  # the model load never started


# --- several workers --------------------------------------------------------------------------------------


def test_workers_share_the_port_and_their_metrics_and_stop_on_sigterm(tiny_checkpoint_dir, tagger, tmp_path):
    import psutil

    port = _free_port()
    args = ["--model", str(tiny_checkpoint_dir), "--port", str(port), "--workers", "2", "--max_wait_ms", "0"]
    proc, log_path = _start_serve(args, tmp_path)
    texts = ["公司维持买入评级", "算力需求旺盛", "国产替代加速推进"]
    want = tagger.tag(texts)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as http:
            _wait_until_ready(http, proc, log_path)
            workers = [
                c
                for c in psutil.Process(proc.pid).children()
                if "resource_tracker" not in " ".join(c.cmdline())
            ]
            assert len(workers) == 2
            before = metric_samples(http.get("/metrics").text)
            # A new connection per request: the kernel spreads connections over the workers' sockets.
            n = 24
            for _ in range(n):
                response = http.post("/v1/tag", json={"inputs": texts}, headers={"Connection": "close"})
                assert response.status_code == 200, response.text
                for g, w in zip(response.json(), want, strict=True):
                    assert_same_tags(g, w)
            after = metric_samples(http.get("/metrics").text)
        # /metrics sums every worker's counters: a single worker's view would miss the other's requests.
        key = ("fintag_http_requests_total", (("route", "/v1/tag"), ("status", "200")))
        assert after[key] - before.get(key, 0) == n
        sent = after[("fintag_model_batch_size_sum", ())] - before.get(("fintag_model_batch_size_sum", ()), 0)
        assert sent == n * len(texts)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        _stop(proc)
    log_text = log_path.read_text()
    assert log_text.count("Application shutdown complete") == 2
    assert "all 2 workers stopped" in log_text
    assert "Traceback" not in log_text


def test_workers_stop_with_exit_1_when_the_model_fails_to_load(tiny_checkpoint_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(tiny_checkpoint_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    proc, log_path = _start_serve(
        ["--model", str(broken), "--port", str(_free_port()), "--workers", "2"], tmp_path
    )
    try:
        assert proc.wait(timeout=90) == 1, log_path.read_text()
    finally:
        _stop(proc)
    log_text = log_path.read_text()
    assert "the model failed to load" in log_text
    assert "exited with 1" in log_text


def test_workers_refuse_a_port_in_use(tiny_checkpoint_dir, caplog):
    from fintag.serve.app import serve_main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = serve_main(["--model", str(tiny_checkpoint_dir), "--port", str(port), "--workers", "2"])
    assert code == 2
    # The message of one process (test above): the same reason and fix whatever the number of workers.
    assert f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in caplog.text
    assert f"pass another --port, or stop the server that listens on port {port}" in caplog.text


def test_worker_threads_share_out_the_cpus():
    from fintag.serve.workers import worker_threads

    cpus = len(os.sched_getaffinity(0))
    assert worker_threads(ServerSettings(workers=2)) == max(1, cpus // 2)
    assert worker_threads(ServerSettings(workers=2 * cpus + 1)) == 1
    assert worker_threads(ServerSettings(workers=2, num_threads=3)) == 3
