"""What a worker logs per request: the ``--log-raw`` dump and the JSON access line.

Theory of operation. Both renderers are pure: the worker hands over what it
already holds (the request as the HTTP layer parsed it, the response as it was
sent, the timings it measured) and gets text back; where that text goes, and
when, is the worker's business.

``--log-raw`` reproduces the Bifrost mock server (``maximhq/bifrost-benchmarking``,
``mocker/main.go``, ``logRawRequest`` and ``logRawResponse``), which makes one Go
``log.Printf`` call per line of this shape::

    --- Raw Request ---
    POST http://localhost:8000/v1/chat/completions HTTP/1.1
    Host: localhost:8000
    Content-Type: application/json
    --- Body ---
    {"model":"gpt-4o-mini", ...}
    --- End Request ---

and the same for the response (``--- Raw Response ---``, ``HTTP/1.1 200 OK``,
``--- End Response ---``). An empty body prints ``--- Body --- (empty)``. The
body is printed as it is, with no pretty-printing or blank lines around it. Go's
``log`` package (which writes to stderr) starts each call with its date prefix (``prefix`` here, see
:func:`go_log_prefix`) and adds a newline unless the text already ends with one,
so lines inside a call (the request line, the body) have no prefix, and a body
that ends with a newline (an SSE stream always does) is followed directly by the
end marker. fasthttp rewrites header names in canonical case
(``x-stainless-retry-count`` becomes ``X-Stainless-Retry-Count``), lists a few
headers it keeps apart first (``Host``, ``Content-Length``, ``Content-Type``,
``User-Agent``, ``Cookie`` for a request; ``Content-Length``, ``Content-Type``,
``Content-Encoding``, ``Server``, ``Set-Cookie`` for a response), then the rest in
the order they came, and ``Connection: close`` last; the request line shows the
full URI. This module does the same. Bifrost prints bodies whole; here a body
over ``limit`` bytes is cut at a character boundary and followed by a
``... (N more bytes)`` line, so one huge prompt cannot flood the terminal.

The access line is one JSON object (``orjson`` bytes, no newline) whose first
keys are ``ts``, ``level`` and ``event``, so log shippers see the usual three
first; fields that are ``None`` are left out to keep lines short. It runs once
per request, so it builds one dict and makes one ``orjson.dumps`` call; only a
string orjson refuses (a lone surrogate) sends it down a slower path that
replaces the bad characters.
"""

from __future__ import annotations

import http
import time
from collections.abc import Sequence
from typing import Final

import orjson

__all__ = [
    "RAW_BODY_LIMIT",
    "access_record",
    "go_log_prefix",
    "raw_request",
    "raw_response",
]

#: Default cap, in bytes, on a body printed by ``--log-raw``.
RAW_BODY_LIMIT: Final = 64 * 1024

Headers = Sequence[tuple[bytes, bytes]]

# fasthttp's order: the headers it stores in their own fields come first.
_REQUEST_FIRST: Final = (b"host", b"content-length", b"content-type", b"user-agent")
_RESPONSE_FIRST: Final = (b"content-length", b"content-type", b"content-encoding", b"server")

# Where Go's (and fasthttp's) status text differs from Python's, in any Python
# this project supports (3.13 renamed 413, 416 and 422). Codes neither knows,
# such as Anthropic's 529, print as fasthttp prints them.
_GO_STATUS_TEXT: Final = {
    413: "Request Entity Too Large",
    414: "Request URI Too Long",
    416: "Requested Range Not Satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Entity",
}
_UNKNOWN_STATUS: Final = "Unknown Status Code"

# Longer decimal strings could overflow orjson's 64-bit integers; no SDK retries that often.
_MAX_RETRY_DIGITS: Final = 9


def raw_request(
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    *,
    scheme: str = "http",
    http_version: str = "1.1",
    prefix: str = "",
    limit: int | None = RAW_BODY_LIMIT,
) -> str:
    """The ``--log-raw`` text for one request, each line ending in a newline.

    ``target`` is the request target as received (``/v1/chat/completions?x=1``);
    it is shown as a full URI built from ``scheme`` and the ``Host`` header, as
    fasthttp shows it. ``prefix`` starts each line Go's ``log`` would start (see
    :func:`go_log_prefix`); ``limit`` caps the body in bytes (``None``: no cap).
    """
    host = _last(headers, b"host")
    uri = f"{scheme}://{host.decode('latin-1')}{target}" if host and target.startswith("/") else target
    calls = [f"{prefix}--- Raw Request ---\n{method} {uri} HTTP/{http_version}"]
    calls += _header_lines(_request_order(headers), prefix)
    calls += (_body_call(body, prefix, limit), f"{prefix}--- End Request ---")
    return _log_output(calls)


def raw_response(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    prefix: str = "",
    limit: int | None = RAW_BODY_LIMIT,
) -> str:
    """The ``--log-raw`` text for one response, each line ending in a newline.

    For a streamed response ``body`` is the concatenation of the SSE events that
    were sent. ``prefix`` and ``limit`` are as for :func:`raw_request`.
    """
    calls = [f"{prefix}--- Raw Response ---\nHTTP/1.1 {status} {_status_text(status)}"]
    calls += _header_lines(_response_order(headers), prefix)
    calls += (_body_call(body, prefix, limit), f"{prefix}--- End Response ---")
    return _log_output(calls)


def go_log_prefix(at: float) -> str:
    """Go's default ``log`` prefix for Unix time ``at`` (seconds): ``2006/01/02 15:04:05 `` in local time."""
    return time.strftime("%Y/%m/%d %H:%M:%S ", time.localtime(at))


def access_record(
    *,
    request_id: str,
    worker: str,
    method: str,
    path: str,
    provider: str,
    model: str,
    status: int,
    stream: bool,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    latency_ms: float,
    ttft_ms: float | None,
    retry_count: str | None,
    client: str | None,
    rate_limited: bool = False,
    fault: str | None = None,
    rule: str | None = None,
    cost_usd: float | None = None,
    at: float,
) -> bytes:
    """One JSON access-log line (no trailing newline) for a finished request.

    ``at`` is the Unix time in seconds, written as ``ts`` in ISO-8601 UTC with
    milliseconds. Latencies are rounded to 0.01 ms. ``retry_count`` is the raw
    ``x-stainless-retry-count`` header: written as an integer when it is a
    decimal number, left out otherwise (the SDK sends other values when a
    caller overrides it). ``None`` fields are left out.
    """
    record: dict[str, object] = {
        "ts": _utc_timestamp(at),
        "level": "info",
        "event": "access",
        "request_id": request_id,
        "worker": worker,
        "method": method,
        "path": path,
        "provider": provider,
        "model": model,
        "status": status,
        "stream": stream,
    }
    if prompt_tokens is not None:
        record["prompt_tokens"] = prompt_tokens
    if completion_tokens is not None:
        record["completion_tokens"] = completion_tokens
    record["latency_ms"] = round(latency_ms, 2)
    if ttft_ms is not None:
        record["ttft_ms"] = round(ttft_ms, 2)
    retries = _retry_count(retry_count)
    if retries is not None:
        record["retry_count"] = retries
    if client is not None:
        record["client"] = client
    record["rate_limited"] = rate_limited
    if fault is not None:
        record["fault"] = fault
    if rule is not None:
        record["rule"] = rule
    if cost_usd is not None:
        record["cost_usd"] = cost_usd
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        # Model names and client ids come from requests; one bad string must not lose the line.
        return orjson.dumps({key: _valid_utf8(value) for key, value in record.items()})


def _utc_timestamp(at: float) -> str:
    """``at`` (Unix seconds) as ``2024-01-02T03:04:05.678Z``, to the nearest millisecond."""
    seconds, millis = divmod(round(at * 1000), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _retry_count(header: str | None) -> int | None:
    """The SDK's retry count from its header value, or ``None`` when it is not a plain number."""
    if header is None or not (header.isascii() and header.isdigit()) or len(header) > _MAX_RETRY_DIGITS:
        return None
    return int(header)


def _valid_utf8(value: object) -> object:
    """``value`` with characters UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


def _last(headers: Headers, name: bytes) -> bytes:
    """The last value of header ``name`` (lower case), or ``b""``."""
    found = b""
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


def _is_close(name: bytes, value: bytes) -> bool:
    return name == b"connection" and value.strip().lower() == b"close"


def _fasthttp_order(
    headers: Headers, first: tuple[bytes, ...], cookie: bytes, *, join_cookies: bool
) -> list[tuple[bytes, bytes]]:
    """``headers`` (names lower-cased) in the order fasthttp's ``VisitAll`` walks them."""
    lowered = [(name.lower(), value) for name, value in headers]
    singles = {name: value for name, value in lowered if name in first}  # fasthttp keeps the last
    cookies = [value for name, value in lowered if name == cookie]
    ordered = [(name, singles[name]) for name in first if singles.get(name)]
    if cookies:
        ordered += [(cookie, b"; ".join(cookies))] if join_cookies else [(cookie, value) for value in cookies]
    ordered += [(n, v) for n, v in lowered if n not in first and n != cookie and not _is_close(n, v)]
    if any(_is_close(name, value) for name, value in lowered):
        ordered.append((b"connection", b"close"))
    return ordered


def _request_order(headers: Headers) -> list[tuple[bytes, bytes]]:
    return _fasthttp_order(headers, _REQUEST_FIRST, b"cookie", join_cookies=True)


def _response_order(headers: Headers) -> list[tuple[bytes, bytes]]:
    return _fasthttp_order(headers, _RESPONSE_FIRST, b"set-cookie", join_cookies=False)


def _canonical_name(name: bytes) -> str:
    """``name`` cased as fasthttp normalises it: upper case first and after each ``-``, lower case elsewhere."""
    out = bytearray(name.lower())
    upper_next = True
    for i, byte in enumerate(out):
        if upper_next:
            upper_next = False
            if 0x61 <= byte <= 0x7A:  # a-z
                out[i] = byte - 0x20
        elif byte == 0x2D:  # "-"
            upper_next = True
    return out.decode("latin-1")


def _header_lines(headers: list[tuple[bytes, bytes]], prefix: str) -> list[str]:
    return [f"{prefix}{_canonical_name(name)}: {value.decode('utf-8', 'replace')}" for name, value in headers]


def _clip(body: bytes, limit: int | None) -> tuple[bytes, int]:
    """The part of ``body`` to print and how many bytes are left out, cutting between characters."""
    if limit is None or len(body) <= limit:
        return body, 0
    cut = max(limit, 0)
    # Back off over UTF-8 continuation bytes (at most three) so no character is split.
    while cut > 0 and cut > limit - 3 and body[cut] & 0xC0 == 0x80:
        cut -= 1
    return body[:cut], len(body) - cut


def _body_call(body: bytes, prefix: str, limit: int | None) -> str:
    if not body:
        return f"{prefix}--- Body --- (empty)"
    kept, more = _clip(body, limit)
    text = kept.decode("utf-8", "replace")
    if more:
        text += f"{_line_break(text)}... ({more} more bytes)"
    return f"{prefix}--- Body ---\n{text}"


def _line_break(text: str) -> str:
    """What puts the truncation marker on a line of its own after ``text``."""
    return "" if not text or text.endswith("\n") else "\n"


def _log_output(calls: list[str]) -> str:
    """What Go's ``log`` writes for these ``Printf`` calls: each ends in exactly one added-if-missing newline."""
    return "".join(call if call.endswith("\n") else call + "\n" for call in calls)


def _status_text(status: int) -> str:
    if status in _GO_STATUS_TEXT:
        return _GO_STATUS_TEXT[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return _UNKNOWN_STATUS
