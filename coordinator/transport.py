"""A ZeroMQ socket driven from trio: non-blocking sends, an awaitable receive.

pyzmq has no trio integration. Its notification FD is edge-triggered and a send
on the same socket can consume the edge a reader waits for, so the reader never
trusts the FD alone: it drains with non-blocking receives and waits on the FD
with a short timeout, which bounds the delay of a missed edge. Sends never block
the event loop: when the peer's queue is full the frame is dropped and counted
(every message in the protocol is cumulative or repeated, so none is precious).
"""

from __future__ import annotations

import trio
import zmq

# Upper bound on how late a message is noticed when its readiness edge was
# consumed by a send; an idle socket costs this many wake-ups per second: 40.
POLL_INTERVAL_S = 0.025


class ZmqChannel:
    """Owns one zmq socket; one task receives, any task may send."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        self._fd = int(sock.getsockopt(zmq.FD))
        self.dropped_sends = 0

    def send(self, frames: list[bytes]) -> bool:
        """Queue ``frames`` without blocking; False (and counted) if they were dropped."""
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped_sends += 1
            return False
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:  # ROUTER: that peer is gone
                self.dropped_sends += 1
                return False
            raise
        return True

    async def receive(self) -> list[bytes]:
        """The next multipart message."""
        while True:
            if int(self._sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                try:
                    return self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    pass
            with trio.move_on_after(POLL_INTERVAL_S):
                await trio.lowlevel.wait_readable(self._fd)

    def close(self, *, linger_ms: int = 0) -> None:
        """Close the socket; queued frames get ``linger_ms`` to leave (at context term)."""
        trio.lowlevel.notify_closing(self._fd)
        self._sock.close(linger=linger_ms)
