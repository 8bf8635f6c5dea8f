"""A bare raw-ASGI app that answers every request with one recorded reply.

The baseline for ``tests/bench_chat.py``: the same Hypercorn/trio stack as
understudy, doing nothing but reading the request body and writing bytes.
``BENCH_BARE_REPLY`` names a JSON file ``{"status", "headers", "events",
"streaming"}`` (header pairs and events base64-encoded); a streamed reply goes
out as one ``http.response.body`` message per event, as understudy sends it.

Run: ``BENCH_BARE_REPLY=reply.json hypercorn --worker-class trio tests.bench_bare_app:app``
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

REPLY_ENV = "BENCH_BARE_REPLY"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _load(path: str) -> tuple[dict[str, Any], list[bytes], bool]:
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    events = [base64.b64decode(event) for event in document["events"]]
    headers = [(base64.b64decode(name), base64.b64decode(value)) for name, value in document["headers"]]
    streaming = bool(document["streaming"])
    if not streaming:
        headers.append((b"content-length", str(len(b"".join(events))).encode()))
    start = {"type": "http.response.start", "status": int(document["status"]), "headers": headers}
    return start, events, streaming


_START, _EVENTS, _STREAMING = _load(os.environ[REPLY_ENV])
_BODY = b"".join(_EVENTS)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        # Hypercorn under trio needs the lifespan scope answered, not refused.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while True:  # read the whole request body first, as understudy does
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    await send(_START)
    if not _STREAMING:
        await send({"type": "http.response.body", "body": _BODY})
        return
    for event in _EVENTS:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
