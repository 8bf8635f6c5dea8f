"""Writing a passthrough answer to the ASGI client, streams event by event as they arrive.

The async counterpart of ``workers.http.respond`` (which writes a sync
iterable of events): a stream's events are awaited from the upstream and sent
one ASGI message each, so the client sees each event as soon as the upstream
sends it. The event generator is always closed, also when the client goes away
or the request is cancelled, which releases the upstream connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import aclosing

from workers.http import Send
from workers.upstream import EventStream, ForwardResult


async def respond_forwarded(send: Send, result: ForwardResult, own_headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Send ``result``; ``own_headers`` (worker id, …) go first, the upstream's after them."""
    headers = [(b"content-type", result.content_type), *own_headers, *result.headers]
    if result.events is None:
        headers.append((b"content-length", str(len(result.body)).encode()))
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})
        return
    headers.append((b"cache-control", b"no-cache"))
    await respond_stream(send, result.status, headers, result.events)


async def respond_stream(send: Send, status: int, headers: list[tuple[bytes, bytes]], events: EventStream) -> None:
    """Start the response, then send each event as it comes; closes ``events`` however it ends."""
    async with aclosing(events) as stream:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for event in stream:
            await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
