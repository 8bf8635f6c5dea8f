"""Passthrough to real upstreams, with fallbacks, recording and replay (the trio adapter of sim.upstreams).

Theory of operation: one :class:`Passthrough` per worker owns one shared
``httpx.AsyncClient`` (httpx runs on trio through anyio/httpcore), so
connections to each upstream are pooled across requests. ``forward`` answers a
request in this order:

1. Replay (when a replay directory is set): the cassette ``DIR/<key>.json``
   answers when it holds an answer for the request's ``stream`` flag. On a miss
   the policy decides: ``error`` answers 404 in the provider's shape
   (``cassette_not_found``; the SDKs do not retry a 404), ``passthrough`` goes on
   to the upstreams.
2. The upstreams serving the provider, in order. A connection error, a timeout,
   a 429 or a 5xx allows falling back to the next one; any other answer (2xx,
   3xx, other 4xx) is the answer. When every upstream failed, the last answer
   received is returned as it was; if none answered at all, a 502 in the
   provider's shape.
3. Record (when a record directory is set): an answer that ends the search
   (not a 429/5xx, not a broken stream) is written to ``DIR/<key>.json`` after
   it completes, through a temporary file and a rename, so a reader never sees
   half a cassette.

Streams are relayed event by event as they arrive: ``ForwardResult.events``
reads the upstream, yields whole SSE events, and records at its end. Whoever
consumes it must close it (``contextlib.aclosing``), also when it never
iterates, so that the upstream response is released when a client goes away.
A stream the upstream breaks mid-way ends with an error event in the
provider's shape and is not recorded. Nothing here retries (httpx does not
retry requests): the caller's SDK does, and fallbacks are not retries.

Credentials: an upstream's ``api_key`` replaces the caller's
(``Authorization: Bearer`` for OpenAI, ``x-api-key`` for Anthropic); an
upstream without one gets the caller's credentials unchanged. Everything else
the caller sent is forwarded (``anthropic-version``, ``anthropic-beta``,
``content-type``, ``x-stainless-*`` …) except hop-by-hop headers, ``host``,
``content-length`` and ``accept-encoding`` (httpx frames and decodes the body
itself).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import trio

from sim import anthropic_wire, openai_wire
from sim.errors import ApiError
from sim.upstreams import (
    Cassette,
    CassetteError,
    EventSplitter,
    MissPolicy,
    Recording,
    Upstream,
    cassette_key,
    cassette_name,
    decode_cassette,
    encode_cassette,
    kept_headers,
    request_is_stream,
    request_model,
)

log = logging.getLogger("understudy.worker.upstream")

JSON = b"application/json"
UPSTREAM_HEADER = b"x-understudy-upstream"
REPLAY = "replay"
CLOSE_TIMEOUT_S = 2.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Dropped from requests besides hop-by-hop ones: httpx sets the framing and
# the host, and negotiates (and decodes) the encoding itself.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
CREDENTIALS = frozenset({"authorization", "x-api-key"})
# Dropped from answers: the body is re-framed (and already decoded) by us, and
# Hypercorn writes its own date and server.
NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "content-type", "date", "server"}


class EventStream(Protocol):
    """What ``ForwardResult.events`` is: async iteration over event bytes, and ``aclose()``, to be called always."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """An answer to relay: a whole ``body``, or (``events`` not None) a stream to write event by event.

    ``headers`` are the upstream's, less hop-by-hop and framing ones, plus
    ``x-understudy-upstream`` naming who answered (an upstream's name, ``replay``,
    or absent when understudy answered itself). ``upstream`` is that name too.
    """

    status: int
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    events: EventStream | None = None
    upstream: str | None = None


class Passthrough:
    """Forwards requests to upstreams for one worker; see the module docstring. Close with :meth:`aclose`."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        record_dir: Path | None = None,
        replay_dir: Path | None = None,
        miss: MissPolicy = "error",
        timeout_s: float = 600.0,
        max_connections: int = 512,
    ) -> None:
        self.upstreams = tuple(upstreams)
        self.record_dir = record_dir
        self.replay_dir = replay_dir
        self.miss = miss
        # One timeout per phase (connect, each read, each write, pool wait): a
        # long stream is fine as long as the upstream keeps sending.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # The settings object is the only source of configuration: no proxies or
            # netrc credentials picked up from the process environment.
            trust_env=False,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def forward(
        self,
        *,
        provider: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        method: str = "POST",
        query: str = "",
    ) -> ForwardResult:
        """Answer one request from a cassette or the upstreams; never raises for upstream failures.

        ``path`` is the API route after the version root (``/chat/completions``,
        ``/messages``), ``headers`` the caller's request headers.
        """
        key = cassette_key(provider, f"{path}?{query}" if query else path, body)
        stream = request_is_stream(body)
        if self.replay_dir is not None:
            recording = await self._replayed(key, stream=stream)
            if recording is not None:
                return _from_recording(recording)
            if self.miss == "error":
                return _error(
                    provider,
                    404,
                    f"understudy replay: no recorded answer for this request (cassette {key}, "
                    f"{'stream' if stream else 'non-stream'}) in {self.replay_dir}.",
                    code="cassette_not_found",
                )
        outgoing = _request_headers(headers)
        last: ForwardResult | None = None
        for upstream in self.upstreams:
            if not upstream.serves(provider):
                continue
            request = self._client.build_request(
                method,
                upstream.url_for(path) + (f"?{query}" if query else ""),
                headers=_with_credentials(outgoing, upstream, provider),
                content=body if method not in ("GET", "HEAD") else None,
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TransportError as error:
                log.warning("upstream %s unreachable: %s", upstream.name, _describe(error))
                continue
            if _is_stream(response) and not _allows_fallback(response.status_code):
                return ForwardResult(
                    response.status_code,
                    _content_type(response),
                    _response_headers(response, upstream.name),
                    events=UpstreamEvents(response, self._relay(response, provider, path, key, body, stream=stream)),
                    upstream=upstream.name,
                )
            try:
                answer = await _read_all(response)
            except httpx.TransportError as error:
                log.warning("upstream %s broke off its answer: %s", upstream.name, _describe(error))
                continue
            if _allows_fallback(response.status_code):
                last = _buffered(response, answer, upstream.name)
                log.info("upstream %s answered %d; trying the next", upstream.name, response.status_code)
                continue
            result = _buffered(response, answer, upstream.name)
            await self._record(key, provider, path, body, _recording_of(response, body=answer), stream=stream)
            return result
        if last is not None:
            return last
        return _error(provider, 502, "understudy passthrough: no upstream answered.", code="upstream_unreachable")

    async def _relay(
        self, response: httpx.Response, provider: str, path: str, key: str, body: bytes, *, stream: bool
    ) -> AsyncGenerator[bytes, None]:
        splitter = EventSplitter()
        events: list[bytes] = []
        try:
            try:
                async for chunk in response.aiter_bytes():
                    for event in splitter.feed(chunk):
                        events.append(event)
                        yield event
            except httpx.TransportError as error:
                log.warning("upstream stream broke off: %s", _describe(error))
                # The status is already sent: all a client can still be told is an error event.
                yield _error_event(provider, _describe(error))
                return
            rest = splitter.flush()
            if rest:
                events.append(rest)
                yield rest
        finally:
            await _close(response)
        await self._record(key, provider, path, body, _recording_of(response, events=events), stream=stream)

    async def _replayed(self, key: str, *, stream: bool) -> Recording | None:
        assert self.replay_dir is not None
        cassette = await _read_cassette(self.replay_dir / cassette_name(key, stream=stream))
        return None if cassette is None else cassette.recording(stream=stream)

    async def _record(
        self, key: str, provider: str, path: str, body: bytes, recording: Recording, *, stream: bool
    ) -> None:
        if self.record_dir is None:
            return
        # One file per shape: two workers recording the stream and the non-stream
        # answer to one question at once write two files, and neither is lost.
        target = self.record_dir / cassette_name(key, stream=stream)
        cassette = Cassette(key, provider, path, request_model(body)).with_recording(recording, stream=stream)
        data = encode_cassette(cassette)
        try:
            await trio.to_thread.run_sync(_write_atomically, target, data)
        except OSError as error:
            # A full disk must not fail the request the client already has its answer to.
            log.error("could not record cassette %s: %s", target, error)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


async def _read_cassette(path: Path) -> Cassette | None:
    try:
        data = await trio.Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        log.error("could not read cassette %s: %s", path, error)
        return None
    try:
        return decode_cassette(data)
    except CassetteError as error:
        # A damaged cassette is a miss, not a failed request.
        log.error("ignoring damaged cassette %s: %s", path, error)
        return None


class UpstreamEvents:
    """A relayed stream: whole SSE events as the upstream sends them; :meth:`aclose` releases the upstream.

    A wrapper rather than the bare generator because closing a generator that
    never started does not run its ``finally``: the response would stay open.
    """

    def __init__(self, response: httpx.Response, events: AsyncGenerator[bytes, None]) -> None:
        self._response = response
        self._events = events

    def __aiter__(self) -> UpstreamEvents:
        return self

    async def __anext__(self) -> bytes:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            await _close(self._response)


async def _read_all(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    finally:
        # aread() closes on success; this covers a broken or cancelled read.
        await _close(response)


async def _close(response: httpx.Response) -> None:
    # Shielded: a cancelled request (client gone) must still release its pooled connection.
    with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
        scope.shield = True
        await response.aclose()


def _allows_fallback(status: int) -> bool:
    return status == 429 or status >= 500


def _is_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


def _content_type(response: httpx.Response) -> bytes:
    return str(response.headers.get("content-type", "application/json")).encode("latin-1")


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _request_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    # Headers that `Connection` names are hop-by-hop for this one message too.
    named = {
        token.strip().lower() for name, value in pairs if name.lower() == "connection" for token in value.split(",")
    }
    return [(name, value) for name, value in pairs if name.lower() not in NOT_FORWARDED | named]


def _with_credentials(headers: list[tuple[str, str]], upstream: Upstream, provider: str) -> list[tuple[str, str]]:
    if upstream.api_key is None:
        return headers
    kept = [(name, value) for name, value in headers if name.lower() not in CREDENTIALS]
    if provider == "anthropic":
        return [*kept, ("x-api-key", upstream.api_key)]
    return [*kept, ("authorization", f"Bearer {upstream.api_key}")]


def _response_headers(response: httpx.Response, upstream: str) -> tuple[tuple[bytes, bytes], ...]:
    own = [(UPSTREAM_HEADER, upstream.encode())]
    # Headers that `Connection` names are hop-by-hop for this one message too.
    named = {token.strip().lower() for token in response.headers.get("connection", "").split(",")}
    passed = [
        (name.lower(), value)
        for name, value in response.headers.raw
        if name.lower().decode("latin-1") not in NOT_RETURNED | named
    ]
    return (*passed, *own)


def _buffered(response: httpx.Response, body: bytes, upstream: str) -> ForwardResult:
    return ForwardResult(
        response.status_code, _content_type(response), _response_headers(response, upstream), body, upstream=upstream
    )


def _recording_of(response: httpx.Response, *, body: bytes = b"", events: list[bytes] | None = None) -> Recording:
    headers = kept_headers(list(response.headers.items()))
    return Recording(response.status_code, headers, body, None if events is None else tuple(events))


def _from_recording(recording: Recording) -> ForwardResult:
    headers = ((UPSTREAM_HEADER, REPLAY.encode()),)
    content_type = recording.content_type.encode("latin-1")
    if recording.events is None:
        return ForwardResult(recording.status, content_type, headers, recording.body, upstream=REPLAY)
    return ForwardResult(recording.status, content_type, headers, events=_replay(recording.events), upstream=REPLAY)


async def _replay(events: Sequence[bytes]) -> AsyncGenerator[bytes, None]:
    for event in events:
        yield event


def _api_error(provider: str, status: int, message: str, *, code: str) -> ApiError:
    if provider == "anthropic":
        error_type = {404: "not_found_error"}.get(status, "api_error")
    else:
        error_type = "invalid_request_error" if status < 500 else "server_error"
    return ApiError(status, message, error_type=error_type, code=code)


def _error(provider: str, status: int, message: str, *, code: str) -> ForwardResult:
    error = _api_error(provider, status, message, code=code)
    body = anthropic_wire.error_body(error) if provider == "anthropic" else openai_wire.error_body(error)
    return ForwardResult(status, JSON, (), body)


def _error_event(provider: str, detail: str) -> bytes:
    error = _api_error(
        provider,
        502,
        f"understudy passthrough: the upstream broke off the stream ({detail}).",
        code="upstream_stream_broken",
    )
    if provider == "anthropic":
        return anthropic_wire.error_event(error)
    return b"data: " + openai_wire.error_body(error) + b"\n\n"
