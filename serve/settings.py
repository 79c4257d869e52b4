"""Settings of `fintag serve`: one pydantic-settings class, read from FINTAG_* variables and from flags.

Flags are generated from the fields (`--max_batch_size 64` for `max_batch_size`) and override the
environment. Bad values are refused at start-up with a message naming the flag, the variable and the fix.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import typing
from pathlib import Path
from typing import Any, Literal

from fintag.cli.args import add_bool_flag, command_parser
from fintag.data.reader import MAX_FILE_BYTES
from fintag.model.backend import DEFAULT_QUANTIZE
from fintag.serve.schemas import MAX_TEXT_CHARS
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

ENV_PREFIX = "FINTAG_"
MIN_API_KEY_CHARS = 16


class SettingsError(ValueError):
    """Settings refused at start-up; the message names each bad value and the fix."""


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model: str | None = Field(
        default=None,
        description="checkpoint folder (or hub id) of a trained tagger (default: artifacts/run/model, what "
        "`make demo` trains: fintag.model.paths.DEFAULT_CHECKPOINT)",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on")
    api_key: SecretStr | None = Field(
        default=None,
        description=(
            f"require `Authorization: Bearer <key>` on every route that touches the model (at least "
            f"{MIN_API_KEY_CHARS} characters); prefer the {ENV_PREFIX}API_KEY variable to the flag, which "
            "other users can see in the process list"
        ),
    )
    max_body_bytes: int = Field(
        default=1_000_000,
        gt=0,
        description="largest JSON request body, in bytes (every route but the file upload, "
        "/v1/read-report, which has --max_upload_bytes)",
    )
    max_upload_bytes: int = Field(
        default=50_000_000,
        gt=0,
        le=MAX_FILE_BYTES,
        description="largest report file uploaded to POST /v1/read-report (the page's file reader), in "
        f"bytes; at most {MAX_FILE_BYTES}, the largest file fintag's reader takes",
    )
    max_items_per_request: int = Field(default=256, gt=0, description="most sentences in one /v1/tag request")
    max_chars_per_item: int = Field(
        default=2000,
        gt=0,
        le=MAX_TEXT_CHARS,
        description=f"longest sentence in /v1/tag, in characters (at most {MAX_TEXT_CHARS}, the longest text "
        "/v1/tag-report and /v1/reviews take)",
    )
    max_batch_size: int = Field(default=128, gt=0, description="most sentences in one model call")
    max_batch_tokens: int = Field(
        default=16384,
        gt=0,
        description="most tokens in one model call (each sentence counted in the model's tokens, special "
        "tokens included, capped at its maximum length)",
    )
    model_pass_tokens: int = Field(
        default=1024,
        ge=64,
        description="most padded tokens in one forward pass: a model call's sentences are sorted by length "
        "and split into passes of at most this many, so short sentences are not padded to the longest "
        "(on CPU small passes are faster; raise it on a GPU)",
    )
    max_wait_ms: float = Field(
        default=5.0, ge=0, le=1000, description="longest a sentence waits for others to share its model call"
    )
    max_queue: int = Field(default=256, gt=0, description="most requests waiting for the model; more get 429")
    num_threads: int | None = Field(
        default=None,
        gt=0,
        description="torch threads per worker (default: torch's choice with one worker, else the CPUs "
        "divided among the workers)",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="server processes on the port, each with its own model and micro-batcher: on a CPU "
        "2 or more give more throughput under many concurrent clients (one model per worker in memory; "
        "a lone client waits longer, each worker having fewer threads)",
    )
    allow_pickle: bool = Field(
        default=False, description="allow pickled (.bin) weights: only for trusted files"
    )
    backend: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="inference backend: onnx (onnxruntime, CPU), torch, or auto (onnx on a CPU, torch on a "
        "GPU; fintag.model.backend.DEFAULT_CPU_BACKEND)",
    )
    quantize: bool = Field(
        default=DEFAULT_QUANTIZE,
        description="int8 on CPU (either backend): faster; a few percent of sentences get other labels than "
        "in fp32 (docs/benchmarks.md); the default comes from fintag.model.backend.DEFAULT_QUANTIZE",
    )
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, description="on SIGTERM, how long in-flight requests may take to finish"
    )
    access_log: bool = Field(default=False, description="log every request (uvicorn's access log)")
    reviews_file: str = Field(
        default="reviews.jsonl",
        min_length=1,
        description="append-only JSONL file where the page's corrections are stored (POST /v1/reviews)",
    )

    @field_validator("api_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_CHARS:
            raise ValueError(
                f"the API key is shorter than {MIN_API_KEY_CHARS} characters; use a random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it"
            )
        return value

    @field_validator("model")
    @classmethod
    def _local_model_exists(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from fintag.model.paths import ModelPathError, resolve_model  # the loader's own rule and words

        try:
            resolve_model(value)
        except ModelPathError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _warn_if_exposed(self) -> ServerSettings:
        if self.api_key is None and not _is_loopback(self.host):
            logger.warning(
                "listening on %s without an API key: anyone who reaches this address can use the model; "
                "set %sAPI_KEY",
                self.host,
                ENV_PREFIX,
            )
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag_help(name: str, field: Any) -> str:
    """The field's description, its default unless the description gives it as "(default: ...)"
    (`fintag.cli.args.with_default`'s rule), and its environment variable."""
    env = f"env {ENV_PREFIX}{name.upper()}"
    if "(default:" in field.description.lower():
        return f"{field.description} ({env})"
    default = (
        "unset"
        if field.default is None
        else str(field.default).lower()
        if field.annotation is bool
        else field.default
    )
    return f"{field.description} (default: {default}; {env})"


def build_parser() -> argparse.ArgumentParser:
    """One flag per settings field; a flag left out keeps the environment's value or the default."""
    parser = command_parser("serve", argument_default=argparse.SUPPRESS)
    for name, field in ServerSettings.model_fields.items():
        if field.annotation is bool:
            add_bool_flag(parser, name, _flag_help(name, field))
        elif typing.get_origin(field.annotation) is typing.Literal:  # choices listed, as `fintag tag` does
            parser.add_argument(
                f"--{name}", choices=list(typing.get_args(field.annotation)), help=_flag_help(name, field)
            )
        else:
            parser.add_argument(f"--{name}", metavar=name.upper(), help=_flag_help(name, field))
    return parser


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        # Never repeat the value of a secret.
        got = "" if name == "api_key" else f" (got {error.get('input')!r})"
        where = f"--{name} / {ENV_PREFIX}{name.upper()}" if name in ServerSettings.model_fields else name
        message = str(error["msg"]).removeprefix("Value error, ")  # pydantic's prefix says nothing to a user
        lines.append(f"  {where}: {message}{got}")
    return "invalid server settings:\n" + "\n".join(lines)


def with_default_model(settings: ServerSettings) -> ServerSettings:
    """`settings` with `DEFAULT_CHECKPOINT` (what `make demo` trains) as the model when none was given, as
    `fintag tag` and `evaluate` do; a `SettingsError` naming both ways to give one when it is not there."""
    if settings.model is not None:
        return settings
    from fintag.model.paths import DEFAULT_CHECKPOINT, ModelPathError, resolve_model

    try:
        resolve_model(DEFAULT_CHECKPOINT)
    except ModelPathError:
        raise SettingsError(
            f"no model: the default, {DEFAULT_CHECKPOINT} (written by `make demo`), is not in "
            f"{Path.cwd()}; pass --model PATH (a checkpoint folder) or set {ENV_PREFIX}MODEL"
        ) from None
    logger.info("no --model given: serving %s", DEFAULT_CHECKPOINT)
    return settings.model_copy(update={"model": DEFAULT_CHECKPOINT})


def load_settings(argv: list[str] | None = None, **overrides: Any) -> ServerSettings:
    """Settings from FINTAG_* variables, overridden by flags in `argv`, then by keyword overrides."""
    flags = vars(build_parser().parse_args(argv or []))
    try:
        return ServerSettings(**{**flags, **overrides})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
