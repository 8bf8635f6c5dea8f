"""ASGI plumbing shared by the app's routes: reading bodies, writing replies, the lifespan.

Nothing here knows a provider's API; it moves bytes between Hypercorn and the
handlers, answers 413 itself (Hypercorn sets no body limit for ASGI apps) and
turns bodies that are not JSON into the client's 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import Any

import orjson
import trio

from sim.delivery import IMMEDIATE, Delivery
from sim.errors import ApiError
from sim.pipeline import PluginResponse

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
PNG = b"image/png"


# An answer: a body, or SSE ``events`` written one ASGI send each. It is the
# pipeline's response type, so plugins see and change exactly what is sent.
Reply = PluginResponse


class MethodNotAllowed(ApiError):
    """405 for a route that exists; ``headers`` carries the ``Allow`` the answer must have."""

    def __init__(self, method: str, path: str, allowed: Iterable[str]) -> None:
        allow = ((b"allow", ", ".join(sorted(allowed)).encode()),)
        super().__init__(405, f"Method {method} not allowed for {path}", code="method_not_allowed", headers=allow)


def has_header(scope: Scope, name: bytes) -> bool:
    return any(key == name for key, _ in scope["headers"])


def api_path(path: str, prefixes: Iterable[str]) -> str | None:
    """``/v1/x``, ``/openai/v1/x`` and ``/x`` all name the API route ``/x``."""
    for prefix in prefixes:
        if path.startswith(prefix):
            rest = path[len(prefix) - 1 :]
            return rest if len(rest) > 1 else None
    return None


def base_url(scope: Scope) -> str:
    """Where the client reached us, for URLs it can fetch (the Host header, else the socket)."""
    for name, value in scope["headers"]:
        if name == b"host":
            return f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
    server = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{server[0]}:{server[1]}"


def json_body(body: bytes, *, provider: str = "OpenAI") -> Any:
    """The decoded JSON of a request body; a body that is not JSON is the client's 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            f"using your HTTP library correctly. The {provider} API expects a JSON payload, but what was "
            "sent was not valid JSON.)",
        ) from error


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")


TRICKLE_PIECES = 10  # a whole answer trickles out in this many pieces


async def respond(
    send: Send, reply: Reply, own_headers: Iterable[tuple[bytes, bytes]], delivery: Delivery = IMMEDIATE
) -> None:
    """Send ``reply``, paced and spoiled as ``delivery`` says (offsets count from now)."""
    headers = [(b"content-type", reply.content_type), *own_headers, *reply.headers]
    if delivery is not IMMEDIATE:
        await _deliver(send, reply, headers, delivery)
        return
    if reply.events is None:
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
        return
    headers.append((b"cache-control", b"no-cache"))
    events = reply.events
    if isinstance(events, AsyncIterator):
        # A passthrough stream: each event goes out as it arrives; closing it
        # (however this ends) releases the upstream connection.
        async with aclosing(events) as stream:  # type: ignore[type-var]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            async for event in stream:
                await send({"type": "http.response.body", "body": event, "more_body": True})
    else:
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _deliver(send: Send, reply: Reply, headers: list[tuple[bytes, bytes]], delivery: Delivery) -> None:
    """The paced or spoiled delivery. Returning before the last body message makes
    Hypercorn close the connection: that is how an answer is cut."""
    start = trio.current_time()
    if delivery.hang_s:
        await trio.sleep(delivery.hang_s)
    if reply.events is None:
        await trio.sleep_until(start + delivery.first_s)
        body = reply.body
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if delivery.cut_after is not None:
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            return
        if delivery.trickle_s:
            step = max(1, -(-len(body) // TRICKLE_PIECES))
            pieces = [body[at : at + step] for at in range(0, len(body), step)] or [b""]
            for piece in pieces[:-1]:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                await trio.sleep(delivery.trickle_s)
            body = pieces[-1]
        await send({"type": "http.response.body", "body": body})
        return
    headers.append((b"cache-control", b"no-cache"))
    assert not isinstance(reply.events, AsyncIterator), "upstream streams are relayed as they come"
    events = reply.events
    offsets = delivery.offsets_s
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    for index, event in enumerate(events):
        if delivery.cut_after is not None and index >= delivery.cut_after:
            if delivery.error_event is not None:
                await send({"type": "http.response.body", "body": delivery.error_event, "more_body": True})
                break
            return
        if delivery.trickle_s and index:
            await trio.sleep(delivery.trickle_s)
        elif index < len(offsets):
            await trio.sleep_until(start + offsets[index])
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def lifespan(receive: Receive, send: Send) -> None:
    # Hypercorn under trio needs the lifespan scope answered, not refused.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
