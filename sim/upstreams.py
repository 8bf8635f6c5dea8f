"""Real upstreams to pass requests through to, and the cassettes that record their answers.

Theory of operation: the ``upstreams`` section of the configuration names real
APIs (OpenAI, Anthropic, or a gateway in front of them) in the order they are
tried. :func:`parse_upstreams` validates every entry at once and reports each
bad field by its path (``upstreams[1].base_url: must be an http(s) URL``), so a
user fixes the whole list in one go. ``base_url`` is the provider's version
root (``https://api.openai.com/v1``, ``https://api.anthropic.com/v1``); the
request's API route (``/chat/completions``, ``/messages``) is appended to it.

A cassette is one recorded upstream answer, stored as ``<cassette_key>.json``.
The key hashes what a request *asks* (provider, endpoint, model, and the
fields that carry the conversation: messages, input, prompt, system, tools…),
not how it asks it: ``stream``, ``user``, ``metadata`` and sampling settings
are left out, so a client that switches streaming on still finds its
cassette. One cassette file therefore holds up to two answers, one for
``stream: false`` requests (a body) and one for ``stream: true`` requests (the
SSE events, one entry per event, as they were sent), and replay picks the one
that matches the request's own flag.

Nothing here touches a socket or a file: the worker's adapter does the I/O.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from sim.errors import UnderstudyError

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[str, ...] = ("openai", "anthropic")
MissPolicy = Literal["error", "passthrough"]
MISS_POLICIES: tuple[str, ...] = ("error", "passthrough")
CASSETTE_FORMAT = 1

# The request fields that say what is being asked; everything else (stream,
# stream_options, user, metadata, temperature, max_tokens, …) is how it is asked.
KEY_FIELDS: tuple[str, ...] = (
    "messages",
    "input",
    "prompt",
    "system",
    "instructions",
    "tools",
    "tool_choice",
    "response_format",
)
UPSTREAM_FIELDS = frozenset({"name", "base_url", "api_key", "provider"})
# Response headers a cassette keeps: the rest (dates, request ids, rate-limit
# counters) described one moment of the upstream, not the answer.
KEPT_HEADERS: tuple[str, ...] = ("content-type",)


class UpstreamConfigError(UnderstudyError):
    """The ``upstreams`` section is invalid; ``problems`` lists every bad field as ``path: message``."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.errors = self.problems  # the name the other config errors use


class CassetteError(UnderstudyError):
    """A cassette file could not be decoded (not JSON, wrong format version, missing fields)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """A real API to forward to. ``api_key`` (never shown in reprs) replaces the caller's when set.

    ``provider`` limits the upstream to one provider's requests; ``None`` takes both
    (a gateway that speaks both APIs).
    """

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    provider: Provider | None = None

    def serves(self, provider: str) -> bool:
        return self.provider is None or self.provider == provider

    def url_for(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")


def parse_upstreams(raw: object, *, where: str = "upstreams") -> tuple[Upstream, ...]:
    """Validate the ``upstreams`` section (a list of mappings); raises :class:`UpstreamConfigError`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UpstreamConfigError([f"{where}: must be a list of {{name, base_url, api_key}} mappings"])
    problems: list[str] = []
    upstreams: list[Upstream] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        path = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{path}: must be a mapping with name and base_url")
            continue
        entry_problems = [f"{path}.{key}: unknown field" for key in entry if key not in UPSTREAM_FIELDS]
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            entry_problems.append(f"{path}.name: must be a non-empty string")
        elif name in seen:
            entry_problems.append(f"{path}.name: {name!r} is already the name of {where}[{seen[name]}]")
        else:
            seen[name] = index
        base_url = entry.get("base_url")
        if not _is_http_url(base_url):
            entry_problems.append(f"{path}.base_url: must be an http(s) URL")
        api_key = entry.get("api_key")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            entry_problems.append(f"{path}.api_key: must be a non-empty string when given")
        provider = entry.get("provider")
        if provider is not None and provider not in PROVIDERS:
            entry_problems.append(f"{path}.provider: must be one of {', '.join(PROVIDERS)}")
        if entry_problems:
            problems += entry_problems
            continue
        assert isinstance(name, str) and isinstance(base_url, str)
        upstreams.append(Upstream(name, base_url.rstrip("/"), api_key, provider))
    if problems:
        raise UpstreamConfigError(problems)
    return tuple(upstreams)


def parse_miss_policy(raw: object) -> MissPolicy:
    if raw == "error":
        return "error"
    if raw == "passthrough":
        return "passthrough"
    raise UpstreamConfigError([f"replay_miss: must be one of {', '.join(MISS_POLICIES)}"])


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment


def _decoded(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def request_is_stream(body: bytes) -> bool:
    """Whether a request body asks for a stream (both providers: ``"stream": true``)."""
    decoded = _decoded(body)
    return isinstance(decoded, dict) and decoded.get("stream") is True


def request_model(body: bytes) -> str | None:
    decoded = _decoded(body)
    model = decoded.get("model") if isinstance(decoded, dict) else None
    return model if isinstance(model, str) else None


def cassette_key(provider: str, endpoint: str, body: bytes) -> str:
    """A stable, file-name-safe key for what a request asks: ``<provider>-<40 hex digits>``.

    JSON bodies are hashed by their :data:`KEY_FIELDS` in a canonical encoding
    (sorted keys), so key order and whitespace do not matter; a body that is not
    a JSON object is hashed as it is.
    """
    decoded = _decoded(body)
    if isinstance(decoded, dict):
        asked = {name: decoded[name] for name in KEY_FIELDS if name in decoded}
        summary: Any = {"endpoint": endpoint, "model": decoded.get("model"), "asked": asked}
    else:
        summary = {"endpoint": endpoint, "raw": body.hex()}
    digest = hashlib.sha256(orjson.dumps([provider, summary], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{provider}-{digest[:40]}"


def cassette_name(key: str, *, stream: bool) -> str:
    """The cassette file for one question's answer in one shape: ``KEY.json`` or ``KEY.stream.json``."""
    return f"{key}.stream.json" if stream else f"{key}.json"


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded answer: a whole ``body``, or the SSE ``events`` of a stream (one entry per event)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    events: tuple[bytes, ...] | None = None

    @property
    def content_type(self) -> str:
        return next((value for name, value in self.headers if name == "content-type"), "application/json")


@dataclass(frozen=True, slots=True)
class Cassette:
    """What one request asked (``provider``, ``endpoint``, ``model``) and its recorded answers."""

    key: str
    provider: str
    endpoint: str
    model: str | None
    answer: Recording | None = None  # to ``stream: false`` requests
    stream_answer: Recording | None = None  # to ``stream: true`` requests

    def recording(self, *, stream: bool) -> Recording | None:
        return self.stream_answer if stream else self.answer

    def with_recording(self, recording: Recording, *, stream: bool) -> Cassette:
        return replace(self, stream_answer=recording) if stream else replace(self, answer=recording)


def kept_headers(headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The response headers worth recording (lower-cased names)."""
    return tuple((name.lower(), value) for name, value in headers if name.lower() in KEPT_HEADERS)


def _bytes_out(data: bytes) -> str | dict[str, str]:
    # Text stays readable in the file (cassettes get reviewed in diffs); other bytes go base64.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _bytes_in(value: object, path: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except ValueError as error:
            raise CassetteError(f"{path}: not valid base64") from error
    raise CassetteError(f"{path}: must be text or {{base64: ...}}")


def _recording_out(recording: Recording) -> dict[str, Any]:
    document: dict[str, Any] = {"status": recording.status, "headers": dict(recording.headers)}
    if recording.events is None:
        document["body"] = _bytes_out(recording.body)
    else:
        document["events"] = [_bytes_out(event) for event in recording.events]
    return document


def _recording_in(document: object, path: str) -> Recording:
    if not isinstance(document, dict):
        raise CassetteError(f"{path}: must be a mapping")
    status = document.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise CassetteError(f"{path}.status: must be an HTTP status")
    headers = document.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise CassetteError(f"{path}.headers: must map names to text")
    if "events" in document:
        events = document["events"]
        if not isinstance(events, list):
            raise CassetteError(f"{path}.events: must be a list")
        decoded = tuple(_bytes_in(event, f"{path}.events[{i}]") for i, event in enumerate(events))
        return Recording(status, tuple(headers.items()), events=decoded)
    return Recording(status, tuple(headers.items()), body=_bytes_in(document.get("body", ""), f"{path}.body"))


def encode_cassette(cassette: Cassette) -> bytes:
    """The cassette's file contents: indented JSON, stable key order."""
    answers: dict[str, Any] = {}
    if cassette.answer is not None:
        answers["json"] = _recording_out(cassette.answer)
    if cassette.stream_answer is not None:
        answers["stream"] = _recording_out(cassette.stream_answer)
    document = {
        "format": CASSETTE_FORMAT,
        "key": cassette.key,
        "request": {"provider": cassette.provider, "endpoint": cassette.endpoint, "model": cassette.model},
        "answers": answers,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def decode_cassette(data: bytes) -> Cassette:
    """Read a cassette file; raises :class:`CassetteError` naming the bad field."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CassetteError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != CASSETTE_FORMAT:
        raise CassetteError(f"format: must be {CASSETTE_FORMAT}")
    request = document.get("request")
    answers = document.get("answers")
    key = document.get("key")
    if not isinstance(key, str) or not isinstance(request, dict) or not isinstance(answers, dict):
        raise CassetteError("key, request and answers: required")
    provider, endpoint, model = request.get("provider"), request.get("endpoint"), request.get("model")
    if not isinstance(provider, str) or not isinstance(endpoint, str) or not isinstance(model, str | None):
        raise CassetteError("request: must name provider, endpoint and model")
    answer = _recording_in(answers["json"], "answers.json") if "json" in answers else None
    stream_answer = _recording_in(answers["stream"], "answers.stream") if "stream" in answers else None
    return Cassette(key, provider, endpoint, model, answer, stream_answer)


class EventSplitter:
    """Cuts a byte stream into whole SSE events (each ending in its blank line).

    Upstream chunks follow TCP, not events; forwarding and recording whole events
    means a replay sends exactly the events the upstream sent, one per write.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        events: list[bytes] = []
        while True:
            end = _event_end(self._pending)
            if end < 0:
                return events
            events.append(self._pending[:end])
            self._pending = self._pending[end:]

    def flush(self) -> bytes:
        """Whatever is left after the stream ends (an unterminated last event), possibly empty."""
        rest, self._pending = self._pending, b""
        return rest


def _event_end(data: bytes) -> int:
    """The end of the first complete event in ``data`` (after its blank line), or -1."""
    ends = [index + len(sep) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r") if (index := data.find(sep)) >= 0]
    return min(ends) if ends else -1
