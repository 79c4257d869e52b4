"""`fintag data build`: report files + hand labels -> a de-duplicated, split, labelled dataset."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintag.data.dedup import NEAR_DUP_THRESHOLD, duplicate_clusters
from fintag.data.fsutil import atomic_directory, read_jsonl, write_json, write_jsonl
from fintag.data.normalize import detect_lang, normalize
from fintag.data.reader import SUPPORTED_SUFFIXES, ReportReadError, iter_report_paths, read_report
from fintag.data.reviews import ReviewFileError, reviews_for_build
from fintag.data.split import segment, sentence_id
from fintag.data.taxonomy import LANGS, ORIGINS, TAXONOMY, check_labels
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
PROJECT_DATA = Path(__file__).resolve().parent


@dataclass
class BuildConfig:
    corpus_dir: str = field(default=str(PROJECT_DATA / "corpus"), metadata={"help": "folder of report files"})
    labels_dir: str = field(
        default=str(PROJECT_DATA / "labels"),
        metadata={"help": "folder with reports*.jsonl gold labels and authored/*.jsonl sentences"},
    )
    output_dir: str = field(default="data/dataset", metadata={"help": "where the dataset is written"})
    seed: int = field(
        default=13, metadata={"help": "seed of the hash that assigns report sentences to splits"}
    )
    report_train_share: float = field(default=0.5, metadata={"help": "share of report sentences in train"})
    near_dup_threshold: float = field(
        default=NEAR_DUP_THRESHOLD, metadata={"help": "bigram Jaccard threshold"}
    )
    allow_unlabeled: bool = field(
        default=False, metadata={"help": "skip report sentences without gold labels instead of failing"}
    )
    reviews: list[str] = field(
        default_factory=list,
        metadata={
            "help": "reviews files (JSONL: `fintag serve`'s POST /v1/reviews, or `fintag review import-ls`): "
            "their labels override gold labels; reviewed sentences of other reports are added, each report "
            "wholly in one split"
        },
    )

    def __post_init__(self) -> None:
        # Out-of-range values would not fail: they silently build empty or lopsided splits (and the default
        # --output_dir replaces the project's dataset), so they are refused before any work.
        if not 0.0 <= self.report_train_share <= 1.0:
            raise ValueError(
                f"--report_train_share is the share of report sentences in train, between 0 and 1 (the rest "
                f"is split evenly between validation and test), not {self.report_train_share}"
            )
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(
                f"--near_dup_threshold is a bigram Jaccard similarity above 0 and at most 1 (pairs more "
                f"similar than it are near duplicates, so 1 turns near-duplicate removal off; default "
                f"{NEAR_DUP_THRESHOLD}), not {self.near_dup_threshold}"
            )


class BuildError(Exception):
    pass


def _bucket(key: str, seed: int) -> float:
    digest = hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF


def load_gold(labels_dir: Path) -> dict[str, dict[str, Any]]:
    gold: dict[str, dict[str, Any]] = {}
    for path in sorted(labels_dir.glob("reports*.jsonl")):
        for row in read_jsonl(path):
            gold[row["id"]] = row
    return gold


def report_records(cfg: BuildConfig) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Sentences of every report in the corpus (exact duplicates removed), with their drop counts."""
    paths = iter_report_paths([cfg.corpus_dir])
    if not paths:
        raise BuildError(
            f"no report files in {cfg.corpus_dir}; "
            f"pass --corpus_dir with reports ({', '.join(SUPPORTED_SUFFIXES)})"
        )
    dropped: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    failures: list[str] = []
    for path in tqdm(paths, desc="reading reports", unit="report"):
        try:
            report = read_report(path)
        except ReportReadError as exc:
            failures.append(str(exc))
            continue
        seg = segment(report.text)
        dropped.update({f"not_a_sentence/{k}": v for k, v in seg.dropped.items()})
        for s in seg.sentences:
            if s.id in seen:
                dropped["exact_duplicate"] += 1
                continue
            seen.add(s.id)
            records.append(
                {
                    "id": s.id,
                    "text": s.text,
                    "text_original": s.original,
                    "origin": "report",
                    "lang": s.lang,
                    "report_id": report.report_id,
                    "start": s.start,
                    "end": s.end,
                    "kind": s.kind,
                }
            )
    if failures:
        raise BuildError("cannot read some reports:\n  " + "\n  ".join(failures))
    return records, dropped


def authored_records(labels_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((labels_dir / "authored").glob("*.jsonl")):
        for line_no, row in enumerate(read_jsonl(path), 1):
            problems = check_labels(row)
            if row.get("lang") not in LANGS:
                problems.append(f"lang is {row.get('lang')!r}; allowed: {list(LANGS)}")
            if problems:
                raise BuildError(
                    f"{path}:{line_no}: " + "; ".join(problems) + " (run `fintag data validate`)"
                )
            norm = normalize(row["text"]).text
            records.append(
                {
                    "id": sentence_id(norm),
                    "text": norm,
                    "text_original": row["text"],
                    "origin": "authored",
                    "lang": row["lang"],
                    "report_id": f"authored/{path.stem}",
                    "start": -1,
                    "end": -1,
                    "kind": "sentence",
                    "heldout": path.stem.startswith("heldout"),
                    **{g.name: row[g.name] for g in TAXONOMY},
                }
            )
    return records


def assign_split(record: dict[str, Any], cfg: BuildConfig, key: str | None = None) -> str:
    """The split of a record: authored ones by their file, report sentences by the hash of `key` (default:
    the sentence id; a whole report's id for reviewed sentences of reports outside the corpus)."""
    if record["origin"] == "authored":
        if not record.pop("heldout"):
            return "train"
        return "validation" if _bucket(record["id"], cfg.seed) < 0.5 else "test"
    b = _bucket(key or record["id"], cfg.seed)
    if b < cfg.report_train_share:
        return "train"
    return "validation" if b < cfg.report_train_share + (1 - cfg.report_train_share) / 2 else "test"


def hf_features() -> Any:
    from datasets import ClassLabel, Features, List, Value

    feats: dict[str, Any] = {
        "id": Value("string"),
        "text": Value("string"),
        "text_original": Value("string"),
        "origin": ClassLabel(names=list(ORIGINS)),
        "lang": ClassLabel(names=list(LANGS)),
        "report_id": Value("string"),
        "start": Value("int32"),
        "end": Value("int32"),
        "kind": Value("string"),
    }
    for g in TAXONOMY:
        label = ClassLabel(names=list(g.labels))
        feats[g.name] = List(label) if g.multi_label else label
    return Features(feats)


def reviewed_records(
    reviewed: dict[str, dict[str, Any]], known: set[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Records of reviewed sentences that are not in the corpus (reports tagged through the page), and the
    split key of each: its report, so a reviewed report never straddles two splits."""
    records: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    for sid, r in reviewed.items():
        if sid in known:
            continue
        start, end = r.get("start"), r.get("end")
        records.append(
            {
                "id": sid,
                "text": r["text"],
                "text_original": r["text"],
                "origin": "report",
                "lang": r["lang"] if r.get("lang") in LANGS else detect_lang(r["text"]),
                "report_id": r["report_id"],
                "start": start if isinstance(start, int) else -1,
                "end": end if isinstance(end, int) else -1,
                "kind": "sentence",
            }
        )
        keys[sid] = f"report:{r['report_id']}"
    return records, keys


def build(cfg: BuildConfig) -> dict[str, Any]:
    """Build the dataset; return the build statistics."""
    labels_dir = Path(cfg.labels_dir)
    reports, dropped = report_records(cfg)
    gold = load_gold(labels_dir)
    try:
        reviewed = reviews_for_build(cfg.reviews) if cfg.reviews else {}
    except ReviewFileError as exc:
        raise BuildError(str(exc)) from exc
    added, split_keys = reviewed_records(reviewed, {r["id"] for r in reports})
    relabelled = sum(r["id"] in reviewed for r in reports)
    # A review is a label: the latest review of a sentence wins over its gold label.
    gold = {**gold, **reviewed}
    missing = [r for r in reports if r["id"] not in gold]
    authored = authored_records(labels_dir)

    # Near duplicates: keep the first of each cluster (report sentences come first), so no two
    # near-duplicate sentences exist anywhere in the dataset and none can straddle two splits.
    records = reports + added + authored
    clusters = duplicate_clusters([r["text"] for r in records], cfg.near_dup_threshold)
    kept: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        if clusters[i] != i:
            dropped[f"near_duplicate/{r['origin']}"] += 1
            continue
        kept.append(r)
    missing_ids = {r["id"] for r in missing}
    still_missing = [r for r in kept if r["id"] in missing_ids]
    pending = Path(cfg.output_dir) / "pending_labels.jsonl"
    if still_missing and not cfg.allow_unlabeled:
        write_jsonl(
            pending, ({"id": r["id"], "report_id": r["report_id"], "text": r["text"]} for r in still_missing)
        )
        raise BuildError(
            f"{len(still_missing)} report sentences have no gold label (listed in {pending}); label them in "
            f"{labels_dir}/reports*.jsonl or pass --allow_unlabeled"
        )
    pending.unlink(missing_ok=True)  # a list left by an earlier failed build is no longer true
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for r in kept:
        if r["origin"] == "report":
            if r["id"] in missing_ids:
                dropped["unlabeled"] += 1
                continue
            problems = check_labels(gold[r["id"]])
            if problems:
                raise BuildError(f"gold label of {r['id']} is invalid: {'; '.join(problems)}")
            r.update({g.name: gold[r["id"]][g.name] for g in TAXONOMY})
        splits[assign_split(r, cfg, split_keys.get(r["id"]))].append(r)
    write_outputs(splits, cfg.output_dir)
    stats: dict[str, Any] = {
        "dropped": dict(sorted(dropped.items())),
        "sizes": {k: len(v) for k, v in splits.items()},
    }
    if cfg.reviews:
        stats["reviews"] = {
            "files": list(cfg.reviews),
            "sentences": len(reviewed),
            "relabelled": relabelled,
            "added": len(added),
            "added_reports": len({r["report_id"] for r in added}),
        }
    write_json(Path(cfg.output_dir) / "build_stats.json", stats)
    logger.info("built %s; dropped %s", stats["sizes"], stats["dropped"])
    return stats


def write_outputs(splits: dict[str, list[dict[str, Any]]], output_dir: str) -> None:
    from datasets import Dataset, DatasetDict

    features = hf_features()
    out = Path(output_dir)
    for name, rows in splits.items():
        write_jsonl(out / f"{name}.jsonl", rows)

    def encode(r: dict[str, Any]) -> dict[str, Any]:
        labels = {
            g.name: [g.index(x) for x in r[g.name]] if g.multi_label else g.index(r[g.name]) for g in TAXONOMY
        }
        return {**r, **labels, "origin": ORIGINS.index(r["origin"]), "lang": LANGS.index(r["lang"])}

    # An empty split (a tiny or filtered corpus) still gets its columns; from_list([]) would have none.
    encoded = {
        name: Dataset.from_list([encode(r) for r in rows], features=features)
        if rows
        else Dataset.from_dict({column: [] for column in features}, features=features)
        for name, rows in splits.items()
    }
    with atomic_directory(out / "hf") as tmp:
        DatasetDict(encoded).save_to_disk(str(tmp))


# JSONL files a build writes beside the splits.
NOT_SPLITS = ("pending_labels",)


def available_splits(dataset_dir: str | Path) -> list[str]:
    """The splits a dataset folder holds (its `<split>.jsonl` files): train, validation, test first."""
    folder = Path(dataset_dir)
    if not folder.is_dir():
        return []
    names = {p.stem for p in folder.glob("*.jsonl") if p.is_file() and p.stem not in NOT_SPLITS}
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def missing_split_message(dataset_dir: str | Path, split: str) -> str:
    """Why a split cannot be read: a name the dataset lacks (naming the ones it has), or no dataset."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    have = available_splits(dataset_dir)
    if have:
        return f"{dataset_dir} has no split {split!r}; its splits are {', '.join(have)}"
    return f"{path} does not exist; run `fintag data build` first"


def load_split(dataset_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """The records of one split, labels as names (what training and evaluation read)."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(missing_split_message(dataset_dir, split))
    return read_jsonl(path)
