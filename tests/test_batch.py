"""`fintag tag`: records, formats, unreadable inputs, resume after a crash, and a two-process run."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fintag.data.fields import FIELD_KEYS
from fintag.data.reader import read_report
from fintag.data.split import segment
from fintag.data.taxonomy import RATING, SENTIMENT, THEMES
from fintag.serve.batch import tag_main
from fintag.serve.outputs import CSV_COLUMNS, RECORD_FORMAT, SUMMARY_COLUMNS

from .conftest import write_pdf

REPO = Path(__file__).resolve().parents[1]

# The same short report, simplified (for GBK, UTF-8 and UTF-16) and traditional (for Big5).
REPORT_SIMPLIFIED = (
    "公司发布三季度报告，营业收入同比增长百分之二十五。\n"
    "算力需求持续旺盛，国产芯片替代进程加快。\n"
    "我们维持对公司的买入评级，目标价上调至八十元。\n"
)
REPORT_TRADITIONAL = (
    "公司發佈三季度報告，營業收入同比增長百分之二十五。\n"
    "算力需求持續旺盛，國產芯片替代進程加快。\n"
    "我們維持對公司的買入評級，目標價上調至八十元。\n"
)


def _one_report_per_chunk(report_dir: Path, checkpoint: Path) -> list[str]:
    """`fintag tag` arguments that make every report its own durable chunk (for kill/resume tests)."""
    return [str(report_dir), "--model", str(checkpoint), "--reports_per_chunk", "1", "--num_threads", "1"]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """`fintag tag` sets torch's thread count for the process; give other tests theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def report_dir(tmp_path, sentences) -> Path:
    """Four small UTF-8 reports made of corpus sentences."""
    zh = [s for s in sentences if sum("\u4e00" <= c <= "\u9fff" for c in s) >= 8]
    folder = tmp_path / "reports"
    folder.mkdir()
    for i in range(4):
        (folder / f"r{i}.txt").write_text("\n".join(zh[i * 6 : i * 6 + 6]) + "\n", encoding="utf-8")
    return folder


def _tag(*args: str | Path) -> int:
    return tag_main([str(a) for a in args])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _by_path(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["path"], []).append(r)
    return out


def test_jsonl_has_every_sentence_once_and_one_summary_per_report(
    tmp_path, report_dir, tiny_checkpoint_dir, tagger
):
    out = tmp_path / "tags.jsonl"
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--reports_per_chunk", "3") == 0
    records = _jsonl(out)
    files = sorted(report_dir.glob("*.txt"))
    groups = _by_path(records)
    assert list(groups) == [str(p) for p in files]  # input order
    for path in files:
        mine = groups[str(path)]
        seg = segment(read_report(path).text)
        expected = seg.sentences
        sents, summaries = mine[:-1], mine[-1:]
        assert [r["type"] for r in sents] == ["sentence"] * len(expected)
        assert [r["text"] for r in sents] == [s.text for s in expected]
        assert [(r["start"], r["end"]) for r in sents] == [(s.start, s.end) for s in expected]
        assert [r["sentence_index"] for r in sents] == list(range(len(expected)))
        # Every unit of these reports is a sentence; the title line is not counted among them.
        titled = seg.title.units if seg.title else 0
        assert summaries[0]["type"] == "summary"
        assert summaries[0]["summary"]["sentences"] == len(expected) - titled
        assert (summaries[0]["summary"]["title"] or {}).get("text") == (seg.title.text if seg.title else None)
        assert summaries[0]["report_id"] == path.stem and summaries[0]["encoding"] == "utf-8"
        # Batching many reports together must not shift predictions between sentences.
        alone = tagger.tag([s.text for s in expected])
        for rec, pred in zip(sents, alone, strict=True):
            assert rec["sentiment"]["label"] == pred["sentiment"]["label"] in SENTIMENT.labels
            assert rec["rating"]["label"] == pred["rating"]["label"] in RATING.labels
            assert set(rec["themes"]["scores"]) == set(THEMES.labels)
            assert rec["sentiment"]["score"] == pytest.approx(pred["sentiment"]["score"], abs=1e-5)
    progress = (tmp_path / "tags.jsonl.progress").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["path"] for line in progress) == [str(p) for p in files]


def test_summary_only_writes_one_record_per_report(tmp_path, report_dir, tiny_checkpoint_dir):
    out = tmp_path / "s.jsonl"
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--summary-only") == 0
    records = _jsonl(out)
    assert [r["type"] for r in records] == ["summary"] * 4
    assert all(r["summary"]["sentences"] > 0 for r in records)


def test_mixed_encodings_are_decoded_and_unreadable_files_skipped(tmp_path, tiny_checkpoint_dir, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "gbk.txt").write_bytes(REPORT_SIMPLIFIED.encode("gbk"))
    (folder / "big5.txt").write_bytes(REPORT_TRADITIONAL.encode("big5"))
    (folder / "bom.txt").write_bytes(b"\xef\xbb\xbf" + REPORT_SIMPLIFIED.encode("utf-8"))
    (folder / "utf16.md").write_bytes(REPORT_SIMPLIFIED.encode("utf-16"))
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (folder / "zero.txt").write_bytes(b"")
    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(folder, "--model", tiny_checkpoint_dir, "--out", out) == 0

    records = _jsonl(out)
    summaries = {Path(r["path"]).name: r for r in records if r["type"] == "summary"}
    assert {k: v["encoding"] for k, v in summaries.items()} == {
        "big5.txt": "big5", "bom.txt": "utf-8-sig", "gbk.txt": "gb18030", "utf16.md": "utf-16",
    }  # fmt: skip
    texts = {
        name: [r["text_normalized"] for r in rs if r["type"] == "sentence"]
        for name, rs in _by_path(records).items()
    }
    wanted = [s.text for s in segment(REPORT_SIMPLIFIED).sentences]
    assert len(wanted) == 3
    assert {Path(k).name: v for k, v in texts.items()} == dict.fromkeys(summaries, wanted)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("binary.txt" in w and "binary" in w for w in warnings)
    assert any("zero.txt" in w and "empty" in w for w in warnings)
    final = caplog.records[-1].getMessage()
    assert "tagged 4 report(s), 12 sentence(s)" in final and "skipped 2" in final


def test_every_input_failing_exits_non_zero(tmp_path, tiny_checkpoint_dir, caplog):
    (tmp_path / "zero.txt").write_bytes(b"")
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "headings.txt").write_text("目录\n", encoding="utf-8")  # no sentence survives splitting
    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    code = _tag(
        tmp_path / "zero.txt", tmp_path / "notes.docx", tmp_path / "headings.txt", tmp_path / "nothing*.txt",
        "--model", tiny_checkpoint_dir, "--out", out,
    )  # fmt: skip
    assert code == 2
    assert "tagged 0 report(s)" in caplog.records[-1].getMessage()
    assert "skipped 4" in caplog.records[-1].getMessage()
    assert not out.exists() and not Path(f"{out}.progress").exists()  # nothing a retry must --resume


def test_pdf_text_layer_is_tagged(tmp_path, tiny_checkpoint_dir):
    pdf = write_pdf(
        tmp_path / "report.pdf",
        [
            "公司算力业务收入同比增长百分之三十，维持买入评级。",
            "国产替代进程加速，看好自动驾驶出租车商业化。",
        ],
    )
    out = tmp_path / "pdf.jsonl"
    assert _tag(pdf, "--model", tiny_checkpoint_dir, "--out", out) == 0
    records = _jsonl(out)
    texts = [r["text_normalized"] for r in records if r["type"] == "sentence"]
    assert "公司算力业务收入同比增长百分之三十,维持买入评级。" in texts
    assert "国产替代进程加速,看好自动驾驶出租车商业化。" in texts
    assert records[-1]["type"] == "summary" and records[-1]["encoding"] == "pdf"


def test_csv_matches_jsonl(tmp_path, report_dir, tiny_checkpoint_dir):
    jsonl, table = tmp_path / "t.jsonl", tmp_path / "t.csv"
    common = ["--model", str(tiny_checkpoint_dir), "--num_threads", "1"]
    assert _tag(report_dir, *common, "--out", jsonl) == 0
    assert _tag(report_dir, *common, "--out", table, "--format", "csv") == 0
    assert table.read_bytes().startswith(b"\xef\xbb\xbftype,")  # a BOM, so Excel reads it as UTF-8
    with table.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    records = _jsonl(jsonl)
    assert [(r["type"], r["path"]) for r in rows] == [(r["type"], r["path"]) for r in records]
    for row, rec in zip(rows, records, strict=True):
        if rec["type"] == "sentence":
            assert row["text"] == rec["text"] and int(row["sentence_index"]) == rec["sentence_index"]
            assert row["sentiment"] == rec["sentiment"]["label"]
            assert float(row["sentiment_score"]) == rec["sentiment"]["score"]
            assert row["themes"] == ";".join(rec["themes"]["labels"])
            assert float(row["compute_score"]) == rec["themes"]["scores"]["compute"]
            assert row["rating"] == rec["rating"]["label"] and row["sentences"] == ""
        else:
            s = rec["summary"]
            assert int(row["sentences"]) == s["sentences"]
            assert row["rating"] == s["rating"]["label"] and row["text"] == ""
            counts = {label: int(row[f"{label}_sentences"]) for label in SENTIMENT.labels}
            assert counts == s["sentiment_counts"] and sum(counts.values()) == s["sentences"]
            for t, index in s["theme_sentiment_index"].items():
                assert row[f"{t}_sentiment_index"] == ("" if index is None else str(index))
            evidence = s["rating"]["evidence"]
            assert row["rating_evidence"] == ("" if evidence is None else evidence["text"])
            for key in FIELD_KEYS:
                assert row[f"field_{key}"] == (s["fields"].get(key) or {}).get("value", "")
    # --summary_only: the summary rows with the summary columns only, the same values.
    brief = tmp_path / "brief.csv"
    assert _tag(report_dir, *common, "--out", brief, "--summary_only") == 0
    with brief.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == SUMMARY_COLUMNS and "text" not in reader.fieldnames
        summaries = list(reader)
    assert summaries == [{k: r[k] for k in SUMMARY_COLUMNS} for r in rows if r["type"] == "summary"]


def test_refuses_existing_out_without_resume(tmp_path, report_dir, tiny_checkpoint_dir, caplog):
    out = tmp_path / "old.jsonl"
    out.write_text("precious\n", encoding="utf-8")
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out) == 2
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert "--resume" in caplog.text and "another --out" in caplog.text
    # --resume must not take over a file that no `fintag tag` run wrote (it has no progress file).
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--resume") == 1
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--resume") == 2  # stdout cannot be resumed


def test_stdin_report(monkeypatch, capsys, tiny_checkpoint_dir):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(REPORT_SIMPLIFIED.encode("gbk"))))
    assert _tag("--model", tiny_checkpoint_dir) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in records] == ["sentence"] * 3 + ["summary"]
    assert {r["path"] for r in records} == {"-"} and records[-1]["encoding"] == "gb18030"
    assert records[0]["text"] == "公司发布三季度报告，营业收入同比增长百分之二十五。"  # as written
    assert records[0]["text_normalized"] == "公司发布三季度报告,营业收入同比增长百分之二十五。"


def test_empty_stdin_and_an_empty_model_say_so(monkeypatch, caplog, tmp_path, tiny_checkpoint_dir):
    from fintag.model.paths import ModelPathError, resolve_model

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n")))
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag("-", "--model", tiny_checkpoint_dir) == 2
    assert any("standard input is empty" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelPathError, match="is empty; pass --model"):
        resolve_model("")
    with pytest.raises(ModelPathError) as info:
        resolve_model(str(tmp_path / "missing"))  # absolute already: no advice to make it absolute
    assert "does not exist" in str(info.value) and "absolute path" not in str(info.value)
    with pytest.raises(ModelPathError, match="or an absolute path"):
        resolve_model("./missing")


# ---------------------------------------------------------------- crash and resume


@pytest.fixture
def many_reports(tmp_path, sentences) -> Path:
    """30 small reports, enough chunks of one report each to kill a run in the middle."""
    zh = [s for s in sentences if sum("\u4e00" <= c <= "\u9fff" for c in s) >= 8]
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30):
        start = (i * 5) % (len(zh) - 8)
        (folder / f"r{i:02d}.txt").write_text("\n".join(zh[start : start + 8]) + "\n", encoding="utf-8")
    return folder


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, many_reports, tiny_checkpoint_dir):
    args = [
        str(many_reports),
        "--model",
        str(tiny_checkpoint_dir),
        "--reports_per_chunk",
        "1",
        "--num_threads",
        "1",
    ]
    out = tmp_path / "killed.jsonl"
    progress = tmp_path / "killed.jsonl.progress"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fintag.serve.cli", "tag", *args, "--out", str(out)],
        env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if progress.exists() and progress.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done_at_kill = progress.read_bytes().count(b"\n")
    assert 2 <= done_at_kill < 30, f"the run was not killed in the middle ({done_at_kill} reports done)"

    assert _tag(*args, "--out", out, "--resume") == 0
    reference = tmp_path / "whole.jsonl"
    assert _tag(*args, "--out", reference) == 0
    resumed = _lines(out)
    assert resumed == _lines(reference)
    assert len(set(resumed)) == len(resumed)
    assert sum(json.loads(line)["type"] == "summary" for line in resumed) == 30
    assert len(_lines(progress)) == 30


@pytest.mark.parametrize("where", ["tail", "middle"])
def test_resume_repairs_partial_line_and_unrecorded_reports(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog, where
):
    args = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    out, reference = tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    assert _tag(*args, "--out", reference) == 0
    assert _tag(*args, "--out", out) == 0
    progress = tmp_path / "out.jsonl.progress"
    keys = _lines(progress)
    # A crash after a report's records were durable but before it was recorded as done, and while
    # the next chunk was being written (half a record, half a progress line).
    dropped = keys.pop(3 if where == "tail" else 1)
    progress.write_text("\n".join(keys) + "\n" + dropped[: len(dropped) // 2], encoding="utf-8")
    with out.open("a", encoding="utf-8") as fh:
        fh.write(_lines(reference)[0][:40])

    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*args, "--out", out, "--resume") == 0
    assert "3 more already done" in caplog.records[-1].getMessage()
    assert "tagged 1 report(s)" in caplog.records[-1].getMessage()
    if where == "tail":  # cut in place: the file is exactly the uninterrupted one
        assert _lines(out) == _lines(reference)
    else:  # rewritten without the unrecorded report, which is tagged again at the end
        assert sorted(_lines(out)) == sorted(_lines(reference))
    assert len(set(_lines(out))) == len(_lines(out))
    assert sorted(_lines(progress)) == sorted(_lines(tmp_path / "ref.jsonl.progress"))


# ---------------------------------------------------------------- several processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_run_equals_single_process(tmp_path, report_dir, tiny_checkpoint_dir):
    (report_dir / "broken.txt").write_bytes(b"")  # a skipped file must not upset the split
    args = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    merged, single = tmp_path / "merged.jsonl", tmp_path / "single.jsonl"
    # The processes total their counts through files beside --out (removed after, with any a crashed run
    # with more processes left: the folder listing below checks).
    (tmp_path / "merged.jsonl.stats-3.json").write_text("{}", encoding="utf-8")
    # `--multi_gpu` is accelerate's torchrun launcher; with no GPU visible the processes use gloo on the
    # CPU (`--cpu` alone would start a single process).
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "fintag.serve.cli", "tag", *args, "--out", str(merged),
    ]  # fmt: skip
    env = {**_env(), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(launch, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "process 0 of 2: 3 report file(s)" in done.stderr
        and "process 1 of 2: 2 report file(s)" in done.stderr
    )
    assert _tag(*args, "--out", single) == 0
    assert _lines(merged) == _lines(single)
    assert sorted(_lines(tmp_path / "merged.jsonl.progress")) == sorted(
        _lines(tmp_path / "single.jsonl.progress")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "merged.jsonl", "merged.jsonl.progress", "merged.jsonl.run.json", "reports", "single.jsonl",
        "single.jsonl.progress", "single.jsonl.run.json",
    ]  # fmt: skip
    assert done.stderr.count("tagged 4 report(s)") == 1 and "skipped 1" in done.stderr


def test_resume_merges_parts_left_by_an_interrupted_multi_process_run(
    tmp_path, report_dir, tiny_checkpoint_dir
):
    files = sorted(str(p) for p in report_dir.glob("*.txt"))
    common = ["--model", str(tiny_checkpoint_dir), "--reports_per_chunk", "1", "--num_threads", "1"]
    reference, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    assert _tag(*files, *common, "--out", reference) == 0
    # What two processes leave when killed: each part holds some finished reports, the second one also
    # an unrecorded report and half a line.
    assert _tag(*files[:2], *common, "--out", tmp_path / "out.jsonl.part-0") == 0
    assert _tag(*files[2:], *common, "--out", tmp_path / "out.jsonl.part-1") == 0
    progress = tmp_path / "out.jsonl.part-1.progress"
    progress.write_text(_lines(progress)[0] + "\n", encoding="utf-8")
    with (tmp_path / "out.jsonl.part-1").open("a", encoding="utf-8") as fh:
        fh.write('{"type": "sentence", "report_id": "r')

    assert _tag(*files, *common, "--out", out) == 2  # the parts are not overwritten silently
    assert _tag(*files, *common, "--out", out, "--resume") == 0  # one process continues the run of two
    assert sorted(_lines(out)) == sorted(_lines(reference))
    assert len(set(_lines(out))) == len(_lines(out))
    # (the part runs' own settings files are this simulation's: real parts are written by one run)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("out") and ".part-" not in p.name]
    assert sorted(left) == ["out.jsonl", "out.jsonl.progress", "out.jsonl.run.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".part-0", ".part-1"))]


def test_a_max_length_beyond_the_models_positions_is_refused_before_writing(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    positions = json.loads((Path(tiny_checkpoint_dir) / "config.json").read_text())["max_position_embeddings"]
    too_long = str(positions + 1)
    code = _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--max_length", too_long)
    assert code == 2  # a flag the model cannot take: exit 2, as any wrong flag
    message = caplog.records[-1].getMessage()
    assert f"max_length {too_long}" in message and f"pass --max_length {positions} or less" in message
    assert not out.exists() and not Path(str(out) + ".progress").exists()
    # Refused from config.json before the model loads.
    assert not [r for r in caplog.records if r.name.startswith("fintag.model")]


def test_resume_with_another_model_or_summary_only_is_refused(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    """One output file must not hold two models' labels, or summaries whose sentences were never written."""
    other = tmp_path / "other_model"
    shutil.copytree(tiny_checkpoint_dir, other)
    out = tmp_path / "out.jsonl"
    first = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    assert _tag(*first, "--out", out) == 0
    before = out.read_bytes()
    recorded = json.loads((tmp_path / "out.jsonl.run.json").read_text(encoding="utf-8"))
    assert recorded["model"] == str(Path(tiny_checkpoint_dir).resolve()) and recorded["summary_only"] is False

    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*_one_report_per_chunk(report_dir, other), "--out", out, "--resume") == 2
    message = caplog.records[-1].getMessage()
    assert "--model" in message and str(other.resolve()) in message and "another --out" in message
    assert _tag(*first, "--out", out, "--resume", "--summary_only") == 2
    assert "--summary_only False then, True now" in caplog.records[-1].getMessage()
    assert out.read_bytes() == before  # nothing written by the refused runs
    assert _tag(*first, "--out", out, "--resume") == 0  # the same settings resume
    assert out.read_bytes() == before


def test_resume_of_a_file_an_earlier_fintag_wrote_is_refused(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    """Summaries changed shape (title, restated: record format 2): a file whose run.json records no format
    (format 1) or another one is never resumed into, so one file does not mix the two."""
    out = tmp_path / "out.jsonl"
    first = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    assert _tag(*first, "--out", out) == 0
    settings = tmp_path / "out.jsonl.run.json"
    recorded = json.loads(settings.read_text(encoding="utf-8"))
    assert recorded["record_format"] == RECORD_FORMAT == 2
    del recorded["record_format"]
    settings.write_text(json.dumps(recorded), encoding="utf-8")
    before = out.read_bytes()
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*first, "--out", out, "--resume") == 2
    assert "record format 1 then, 2 now" in caplog.records[-1].getMessage()
    assert out.read_bytes() == before


def test_a_folder_of_web_pages_and_word_files_is_tagged(tmp_path, tiny_checkpoint_dir, caplog):
    import io

    from docx import Document

    folder = tmp_path / "in"
    folder.mkdir()
    sentences = [s.strip() + "。" for s in REPORT_SIMPLIFIED.split("。") if s.strip()]
    page = "<html><meta charset='gbk'><body>" + "".join(f"<p>{s}</p>" for s in sentences)
    (folder / "a.html").write_bytes((page + "</body></html>").encode("gbk"))
    doc = Document()
    for sentence in sentences:
        doc.add_paragraph(sentence)
    buffer = io.BytesIO()
    doc.save(buffer)
    (folder / "b.docx").write_bytes(buffer.getvalue())
    caplog.set_level(logging.INFO, logger="fintag")
    out = tmp_path / "t.jsonl"
    assert _tag(folder, "--model", tiny_checkpoint_dir, "--out", out) == 0
    summaries = [
        r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines()) if r["type"] == "summary"
    ]
    assert {r["report_id"]: r["encoding"] for r in summaries} == {"a": "gb18030", "b": "docx"}
    assert summaries[0]["summary"]["sentences"] == summaries[1]["summary"]["sentences"] > 0


def test_files_of_a_folder_that_are_not_reports_are_named(tmp_path, tiny_checkpoint_dir, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text(REPORT_SIMPLIFIED, encoding="utf-8")
    (folder / "b.xlsx").write_bytes(b"PK\x03\x04")
    (folder / "c.pptx").write_bytes(b"PK\x03\x04")
    (folder / ".DS_Store").write_bytes(b"\x00")
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(folder, "--model", tiny_checkpoint_dir, "--out", tmp_path / "t.jsonl") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("left out 2 file(s)" in w and ".xlsx" in w and ".pptx" in w for w in warnings), warnings
    assert "tagged 1 report(s)" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("bom", [True, False])
def test_a_csv_run_resumes_with_or_without_the_bom(tmp_path, report_dir, tiny_checkpoint_dir, bom):
    """CSV files start with a BOM (Excel); one written before that (no BOM) still resumes as it is."""
    args = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    out, reference = tmp_path / "out.csv", tmp_path / "ref.csv"
    assert _tag(*args, "--out", reference) == 0
    assert _tag(*args, "--out", out) == 0
    want = reference.read_bytes() if bom else reference.read_bytes().removeprefix(b"\xef\xbb\xbf")
    progress = Path(f"{out}.progress")
    keys = _lines(progress)
    rows = want.decode("utf-8").splitlines(keepends=True)
    # A crash before the last report was recorded: its rows cut short, its progress line missing.
    out.write_bytes("".join(rows[:-3]).encode("utf-8") + rows[-3][:10].encode("utf-8"))
    progress.write_text("\n".join(keys[:-1]) + "\n", encoding="utf-8")
    assert _tag(*args, "--out", out, "--resume") == 0
    assert out.read_bytes() == want


def test_resume_retags_a_report_whose_summary_was_cut_off(tmp_path, report_dir, tiny_checkpoint_dir, caplog):
    """An output cut short by hand (not by a crash: the progress file still lists every report) loses the
    last report's summary; that report is tagged again, not counted as done."""
    args = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    out, reference = tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    assert _tag(*args, "--out", reference) == 0
    assert _tag(*args, "--out", out) == 0
    data = out.read_bytes()
    last_summary = data.rstrip(b"\n").rfind(b"\n") + 1
    out.write_bytes(data[: last_summary + 20])  # the last report's sentences, half its summary line
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*args, "--out", out, "--resume") == 0
    assert "tagged 1 report(s)" in caplog.records[-1].getMessage()
    assert sorted(_lines(out)) == sorted(_lines(reference))
    assert sum(json.loads(line)["type"] == "summary" for line in _lines(out)) == len(
        _lines(tmp_path / "ref.jsonl.progress")
    )


# ---------------------------------------------------------------- one run per output, what a run reads


def test_a_second_run_into_the_same_out_is_refused_while_one_holds_it(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    from fintag.serve.batch import lock_output

    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    release = lock_output(str(out))  # as a run in progress holds it
    try:
        assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out) == 2
        assert "another `fintag tag` is writing" in caplog.records[-1].getMessage()
        assert not out.exists()
    finally:
        release()
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "reports",
        "tags.jsonl",
        "tags.jsonl.progress",
        "tags.jsonl.run.json",
    ]  # fmt: skip  (the lock is gone with the run)


def test_resume_after_the_checkpoint_was_replaced_in_place_is_refused(
    tmp_path, report_dir, tiny_checkpoint, caplog
):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "out.jsonl"
    assert _tag(*_one_report_per_chunk(report_dir, tiny_checkpoint), "--out", out) == 0
    before = out.read_bytes()
    weights = tiny_checkpoint / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.5  # retrained into the same folder
    save_file(tensors, weights, metadata={"format": "pt"})
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*_one_report_per_chunk(report_dir, tiny_checkpoint), "--out", out, "--resume") == 2
    assert "has changed since the run that wrote it began" in caplog.records[-1].getMessage()
    assert out.read_bytes() == before


def test_the_checkpoints_max_length_is_the_default(monkeypatch, capsys, tiny_checkpoint):
    """`fintag tag` truncates where the checkpoint was trained to (fintag_max_length), as the API does."""
    from fintag.model.labels import MAX_LENGTH_KEY
    from fintag.serve.tagger import Tagger

    config = tiny_checkpoint / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), MAX_LENGTH_KEY: 6}), encoding="utf-8")
    long_sentence = "公司发布三季度报告,营业收入同比增长百分之二十五,算力需求持续旺盛,国产芯片替代进程加快。"

    def scores(*flags: str) -> list[float]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(long_sentence.encode())))
        assert _tag("--model", tiny_checkpoint, "--stdin", "lines", *flags) == 0
        record = json.loads(capsys.readouterr().out.splitlines()[0])
        return sorted(record["sentiment"]["scores"].values())

    api = Tagger.load(tiny_checkpoint).tag([long_sentence])[0]
    # A random tiny model: scores differ in the fifth decimal, which is still a difference.
    assert scores() == pytest.approx(sorted(api["sentiment"]["scores"].values()), abs=2e-6)
    assert scores("--max_length", "64") != scores()


def test_an_out_inside_the_input_folder_is_never_tagged(tmp_path, report_dir, tiny_checkpoint_dir, caplog):
    out = report_dir / "tags.txt"  # a report's extension: the folder would list it
    args = [report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--format", "jsonl"]
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*args) == 0
    before = out.read_bytes()
    assert _tag(*args, "--resume") == 0
    assert "tagged 0 report(s), 0 sentence(s) (4 more already done" in caplog.records[-1].getMessage()
    assert out.read_bytes() == before
    assert not [r for r in caplog.records if "left out" in r.getMessage()]  # its .progress, .run.json


def test_stdin_takes_a_pdf_and_names_bad_bytes(monkeypatch, capsys, caplog, tmp_path, tiny_checkpoint_dir):
    pdf = write_pdf(tmp_path / "r.pdf", ["算力需求持续旺盛,国产芯片替代进程加快。"])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pdf.read_bytes())))
    assert _tag("--model", tiny_checkpoint_dir) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[-1]["encoding"] == "pdf" and "算力需求持续旺盛" in records[0]["text"]

    caplog.set_level(logging.INFO, logger="fintag")
    damaged = b"\xef\xbb\xbf" + REPORT_SIMPLIFIED.encode("gbk")  # a UTF-8 mark on GBK bytes
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(damaged)))
    assert _tag("--model", tiny_checkpoint_dir) == 2  # skipped with its reason, not a traceback
    assert any("UTF-8 byte-order mark" in r.getMessage() for r in caplog.records)


def test_out_dash_is_standard_output(monkeypatch, capsys, tmp_path, tiny_checkpoint_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(REPORT_SIMPLIFIED.encode())))
    assert _tag("--model", tiny_checkpoint_dir, "--out", "-") == 0
    assert [json.loads(x)["type"] for x in capsys.readouterr().out.splitlines()][-1] == "summary"
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_says_how_to_resume(
    monkeypatch, tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    import fintag.serve.batch as batch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "tag_files", interrupted)
    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out) == batch.EXIT_INTERRUPTED == 130
    message = caplog.records[-1].getMessage()
    assert message.startswith("interrupted") and "with --resume" in message
    assert not (tmp_path / "tags.jsonl.lock").exists()


def test_progress_is_logged_when_stderr_is_not_a_terminal(
    monkeypatch, tmp_path, many_reports, tiny_checkpoint_dir, caplog
):
    import fintag.serve.batch as batch

    monkeypatch.setattr(batch, "PROGRESS_LOG_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="fintag")
    out = tmp_path / "tags.jsonl"
    assert _tag(many_reports, "--model", tiny_checkpoint_dir, "--out", out, "--reports_per_chunk", "10") == 0
    lines = [r.getMessage() for r in caplog.records if "report(s) done" in r.getMessage()]
    assert [line.split(" ")[0] for line in lines] == ["10/30", "20/30", "30/30"]


def test_a_refused_lock_stops_every_process_of_a_multi_process_run(tmp_path, report_dir, tiny_checkpoint_dir):
    from fintag.serve.batch import lock_output

    out = tmp_path / "tags.jsonl"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "fintag.serve.cli", "tag", *_one_report_per_chunk(report_dir, tiny_checkpoint_dir),
        "--out", str(out),
    ]  # fmt: skip
    release = lock_output(str(out))
    try:
        env = {**_env(), "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run(launch, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        release()
    # The processes stop at once with the message and exit 2, not a gloo error after a wait at a barrier.
    # (Which of them the launcher sees exit first, and whether it stops the other before that one has
    # exited by itself, is a race: `test_every_process_learns_that_the_lock_was_refused` checks each.)
    assert done.returncode != 0 and "exitcode  : 2" in done.stderr, done.stderr[-3000:]
    assert "another `fintag tag` is writing" in done.stderr and "gloo" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob("tags.jsonl.part-*"))


def test_run_json_records_the_length_used_so_an_explicit_equal_one_resumes(
    tmp_path, report_dir, tiny_checkpoint_dir, caplog
):
    from fintag.model.labels import DEFAULT_MAX_LENGTH, MAX_LENGTH_KEY

    config = json.loads((Path(tiny_checkpoint_dir) / "config.json").read_text())
    used = int(config.get(MAX_LENGTH_KEY) or DEFAULT_MAX_LENGTH)
    out = tmp_path / "out.jsonl"
    args = _one_report_per_chunk(report_dir, tiny_checkpoint_dir)
    assert _tag(*args, "--out", out) == 0
    assert json.loads((tmp_path / "out.jsonl.run.json").read_text())["max_length"] == used
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(*args, "--out", out, "--resume", "--max_length", str(used)) == 0
    assert _tag(*args, "--out", out, "--resume", "--max_length", str(used - 1)) == 2
    assert f"--max_length {used} then, {used - 1} now" in caplog.records[-1].getMessage()


def test_own_file_names_only_out_and_what_a_run_keeps_beside_it(tmp_path):
    from fintag.serve.batch import own_file

    out = str(tmp_path / "tags.jsonl")
    kept = [
        "tags.jsonl", "tags.jsonl.progress", "tags.jsonl.run.json", "tags.jsonl.lock", "tags.jsonl.part-0",
        "tags.jsonl.part-12.progress", "tags.jsonl.stats-1.json",
    ]  # fmt: skip
    reports = ["tags.jsonl.txt", "tags.txt", "tags.jsonl.part-x", "x_tags.jsonl", "tags.jsonl.progress.md"]
    assert [n for n in kept if own_file(tmp_path / n, out)] == kept
    assert [n for n in reports if own_file(tmp_path / n, out)] == []
    assert not own_file(tmp_path / "sub" / "tags.jsonl", out) and not own_file(tmp_path / "tags.jsonl", None)


@pytest.mark.parametrize("main", [True, False])
def test_every_process_learns_that_the_lock_was_refused(monkeypatch, tmp_path, main):
    """The main process takes the lock and broadcasts whether it got it; each process then stops with the
    same message (accelerate's broadcast stood in for: one process here plays its part)."""
    import accelerate.utils
    from fintag.serve import batch

    out = str(tmp_path / "tags.jsonl")
    held = batch.lock_output(out)  # another run holds it
    sent: list[object] = []

    def broadcast(values, from_process=0):
        sent.append(values[0])
        return values if main else ["another `fintag tag` is writing " + out]

    monkeypatch.setattr(accelerate.utils, "broadcast_object_list", broadcast)
    torn_down: list[bool] = []
    state = type(
        "State",
        (),
        {
            "is_main_process": main,
            "num_processes": 2,
            "destroy_process_group": lambda self: torn_down.append(True),
        },
    )()
    try:
        with pytest.raises(batch.BatchError, match="another `fintag tag` is writing"):
            batch._lock_for_every_process(batch.TagConfig(out=out, model="m"), state)
    finally:
        held()
    assert len(sent) == 1 and (sent[0] is not None) == main  # the main process sends its refusal
    assert torn_down == [True]  # before the exit (see _lock_for_every_process)
    state.is_main_process = main
    release = batch._lock_for_every_process(batch.TagConfig(out=out, model="m"), state) if main else None
    if release is not None:  # the lock is free now: the main process takes it, and tells the others
        assert sent[-1] is None and (tmp_path / "tags.jsonl.lock").exists()
        release()


def test_the_tagger_counts_a_roberta_models_positions_as_training_does():
    """XLM-R numbers positions after its padding id: 2 of its 514 are unusable, at tagging as at training
    (`fintag.model.presets.usable_positions`, one rule for both)."""
    from types import SimpleNamespace

    from fintag.serve.tagger import Tagger, TaggerSettingsError

    config = SimpleNamespace(max_position_embeddings=514, model_type="xlm-roberta", pad_token_id=1)
    with pytest.raises(TaggerSettingsError, match="longer than the model's 512 positions"):
        Tagger(SimpleNamespace(config=config), tokenizer=None, max_length=513)


def test_a_csv_row_is_one_line_whatever_breaks_the_text_holds():
    """A unit that runs over a PDF's page break holds a form feed; a CSV row stays one line (what
    `str.splitlines` splits at is written as a space), so resuming and line-based tools see one row."""
    from fintag.data.taxonomy import THEMES
    from fintag.serve.outputs import CsvFormat

    record = {
        "type": "sentence", "report_id": "r", "path": "r.pdf", "sentence_index": 0, "start": 0, "end": 9,
        "text": "随着良率提升\f,毛利率\v回升\r\n至55.4%\u2028。",
        "text_normalized": "随着良率提升,毛利率回升至55.4%。", "kind": "sentence", "lang": "zh-Hans",
        "sentiment": {"label": "positive", "score": 0.9, "scores": {}},
        "themes": {"labels": [], "scores": dict.fromkeys(THEMES.labels, 0.1)},
        "rating": {"label": "none", "score": 0.9, "scores": {}},
    }  # fmt: skip
    line = CsvFormat().line(record)
    assert len(line.splitlines()) == 1 and "随着良率提升 ,毛利率 回升  至55.4% 。" in line
