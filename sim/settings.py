"""One validated, frozen settings object, built from layers.

Theory of operation: each source (built-in defaults, a YAML config file, the
environment, command-line flags) is read into a plain mapping of setting name to
raw value, remembering where each value came from. The layers are merged in
precedence order (later wins) and validated once by a pydantic model; a failure
is reported as a :class:`SettingsError` naming the setting and its source, so the
CLI can print one line and exit 2.

The environment is passed in as a mapping, never read from ``os.environ`` here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.errors import SettingsError

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "dall-e-3",
    "gpt-image-1",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
)
ContentMode = Literal["generated", "echo", "fixed", "canned"]
DEFAULT_FIXED_TEXT = "This is a mocked response from understudy."

ENV_PREFIX = "UNDERSTUDY_"
# The Bifrost mock server's names, read so understudy can replace it unchanged.
# UNDERSTUDY_* wins over these when both are set.
MOCKER_ENV = {
    "MOCKER_HOST": "host",
    "MOCKER_PORT": "port",
    "MOCKER_BIG_PAYLOAD": "big_payload",
    "MOCKER_AUTH": "auth",
    "MOCKER_LATENCY": "latency",
    "MOCKER_JITTER": "jitter",
    "MOCKER_FAILURE_PERCENT": "failure_percent",
    "MOCKER_FAILURE_JITTER": "failure_jitter",
    "MOCKER_TPM": "tpm",
    "MOCKER_TPM_DURATION": "tpm_duration",
    "MOCKER_LOG_RAW": "log_raw",
}


class ModelContent(BaseModel):
    """How replies are written for one model (an entry of ``content_by_model``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: ContentMode = "generated"
    text: str = DEFAULT_FIXED_TEXT
    responses: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _canned_needs_responses(self) -> ModelContent:
        if self.mode == "canned" and not self.responses:
            raise ValueError("responses: must list at least one response when mode is canned")
        return self


class Settings(BaseModel):
    """Everything a process of understudy needs to know, validated once in ``main()``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="HTTP listen address")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 picks a free one)")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=512,
        description="worker processes started by `serve` (default: number of CPUs)",
    )
    coordinator_bind: str | None = Field(
        None,
        description="ZeroMQ endpoint the coordinator binds (`coordinator` default "
        "tcp://127.0.0.1:5555; `serve` default: a private ipc:// socket)",
    )
    coordinator_url: str = Field("tcp://127.0.0.1:5555", description="ZeroMQ endpoint a `worker` connects to")
    worker_id: str | None = Field(None, description="this worker's id (default: HOSTNAME-PID; `serve` uses w0..wN-1)")
    heartbeat_interval_s: float = Field(1.0, gt=0, le=60, description="heartbeat period, both ways")
    heartbeat_timeout_s: float = Field(
        5.0, gt=0, le=600, description="silence after which a worker (or the coordinator) is dead"
    )
    stats_interval_s: float = Field(0.2, gt=0, le=10, description="how often a worker reports its cumulative counters")
    grace_period_s: float = Field(10.0, ge=0, le=3600, description="how long shutdown lets in-flight requests finish")
    keep_alive_timeout_s: float = Field(75.0, gt=0, le=3600, description="idle keep-alive connection timeout")
    backlog: int = Field(1024, ge=1, le=65535, description="listen backlog of the HTTP socket")
    max_body_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="largest request body accepted (else 413)")
    models: tuple[str, ...] = Field(DEFAULT_MODELS, min_length=1, description="model ids listed by GET /v1/models")
    content_mode: ContentMode = Field(
        "generated", description="reply text: generated, echo (last user message), fixed (content_text), canned"
    )
    content_text: str = Field(DEFAULT_FIXED_TEXT, description="the reply in `fixed` mode")
    content_responses: tuple[str, ...] = Field((), description="replies cycled in order in `canned` mode (JSON list)")
    content_by_model: dict[str, ModelContent] = Field(
        default_factory=dict,
        description="per-model content: {model: {mode, text, responses}} (JSON in env and flags)",
    )
    big_payload: bool = Field(False, description="about 10 KB generated replies and 4096-dimension embeddings")
    admin_token: str | None = Field(None, description="when set, /admin/* needs `Authorization: Bearer TOKEN`")
    auth: str | None = Field(
        None,
        description="when set (not empty), API requests need exactly this `Authorization` value, else 403"
        " (`x-api-key: K` counts as `Bearer K`)",
    )
    latency: float = Field(0.0, ge=0, description="milliseconds before each answer (the mock server's -latency)")
    jitter: float = Field(0.0, ge=0, description="latency varies uniformly within ±jitter milliseconds")
    latency_profiles: dict[str, Any] | None = Field(
        None, description="per-model TTFT, inter-token latency and prefill cost; see README, Latency"
    )
    failure_percent: float = Field(0.0, ge=0, le=100, description="share of requests that fail (500 by default)")
    failure_jitter: float = Field(0.0, ge=0, le=100, description="the failure rate varies within ±jitter points")
    faults: dict[str, Any] | None = Field(None, description="what failures are and per-model rates; see README, Faults")
    tpm: float = Field(0.0, ge=0, description="seconds after the cluster starts from which every request gets 429")
    tpm_duration: float = Field(0.0, ge=0, description="how long the tpm window lasts in seconds (0: for good)")
    limit_rpm: int | None = Field(None, ge=1, description="cluster-wide requests per minute (429 beyond it)")
    limit_tpm: int | None = Field(None, ge=1, description="cluster-wide tokens per minute (429 beyond it)")
    limit_concurrency: int | None = Field(
        None, ge=1, description="cluster-wide requests in flight (503 OpenAI, 529 Anthropic beyond it)"
    )
    limits: dict[str, Any] | None = Field(
        None, description="rate limits: {rpm, tpm, concurrency, tier, models: {model: {rpm, tpm, concurrency}}}"
    )
    keys: list[dict[str, Any]] | None = Field(
        None,
        description="API keys accepted, each with its own behaviour: [{key, limits, faults, latency}] (README, Keys)",
    )
    coordinator_down: Literal["fail-open", "fail-closed"] = Field(
        "fail-open",
        description="coordinator unreachable: fail-open serves on local state (counted), fail-closed answers 503",
    )
    log_raw: bool = Field(False, description="log every raw request and response (the mock server's -log-raw)")
    access_log: bool = Field(True, description="one JSON access-log line per API request")
    pricing: dict[str, Any] | None = Field(
        None, description="USD per million tokens per model, over the built-in table: {model: {input, output}}"
    )
    mocker: dict[str, Any] | None = Field(
        None, description="the rules document (Bifrost mocker semantics); see README, Scenario rules"
    )
    upstreams: list[dict[str, Any]] | None = Field(
        None, description="real APIs to pass requests through to: [{name, base_url, api_key, provider}]"
    )
    record: str | None = Field(None, description="directory to record each upstream exchange into (cassettes)")
    replay: str | None = Field(None, description="directory of cassettes to answer from")
    replay_miss: Literal["error", "passthrough"] = Field(
        "error", description="a request with no cassette: `error` (404) or `passthrough` to the upstreams"
    )
    upstream_timeout_s: float = Field(600.0, gt=0, description="per-phase timeout of upstream requests")
    plugins: list[dict[str, Any]] | None = Field(
        None, description='user plugins: [{name, factory: "package.module:create", config}] (README, Plugins)'
    )
    seed: int | None = Field(None, description="seed for generated content (default: random)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level of every process")

    @field_validator(
        "models",
        "content_responses",
        "content_by_model",
        "latency_profiles",
        "faults",
        "limits",
        "keys",
        "pricing",
        "mocker",
        "upstreams",
        "plugins",
        mode="before",
    )
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        # Environment variables and flags are text: JSON when it looks like
        # JSON, otherwise (models) a comma-separated list.
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith(("[", "{")):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON: {error.msg}") from error
        return tuple(item.strip() for item in value.split(",") if item.strip())

    @model_validator(mode="after")
    def _timeout_longer_than_heartbeat(self) -> Settings:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s: must be greater than heartbeat_interval_s")
        if self.content_mode == "canned" and not self.content_responses:
            raise ValueError("content_responses: must list at least one response when content_mode is canned")
        return self


FIELDS: tuple[str, ...] = tuple(Settings.model_fields)


def _env_layer(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    layer: dict[str, tuple[Any, str]] = {}
    for env_name, field in MOCKER_ENV.items():
        if env_name in environ:
            layer[field] = (environ[env_name], env_name)
    for field in FIELDS:
        env_name = ENV_PREFIX + field.upper()
        if env_name in environ:
            layer[field] = (environ[env_name], env_name)
    return layer


def read_config_file(path: str) -> dict[str, Any]:
    """The mapping a YAML (or JSON) config file holds; :class:`SettingsError` if it cannot be read."""
    source = f"config file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError("config", "--config", f"cannot read {path}: {error.strerror}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first_line = str(error).splitlines()[0] if str(error) else "invalid YAML"
        raise SettingsError("config", source, f"not valid YAML: {first_line}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SettingsError("config", source, "must be a mapping of setting names to values")
    return {str(key): value for key, value in document.items()}


def _file_layer(path: str) -> dict[str, tuple[Any, str]]:
    return {key: (value, f"config file {path}") for key, value in read_config_file(path).items()}


def load_settings(
    *,
    environ: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
    config_path: str | None = None,
    base: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults < ``base`` < config file < environment < flags and validate.

    ``base`` is an already-effective settings mapping handed from a parent process.
    Raises :class:`SettingsError` naming the first bad setting and its source.
    """
    merged: dict[str, tuple[Any, str]] = {}
    if base:
        merged.update({key: (value, "parent process") for key, value in base.items()})
    if config_path:
        merged.update(_file_layer(config_path))
    merged.update(_env_layer(environ))
    if flags:
        merged.update({key: (value, "--" + key.replace("_", "-")) for key, value in flags.items() if value is not None})
    values = {key: value for key, (value, _) in merged.items()}
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        location = first["loc"]
        setting = str(location[0]) if location else "settings"
        source = merged[setting][1] if setting in merged else "defaults"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        if not location and ": " in message:
            # A cross-field check names its setting at the start of its message.
            setting, _, message = message.removeprefix("Value error, ").partition(": ")
            source = merged[setting][1] if setting in merged else "defaults"
        raise SettingsError(setting, source, message) from error


def settings_document(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data (for `config show` and for child processes)."""
    document = settings.model_dump(mode="json")
    document["models"] = list(settings.models)
    return document
