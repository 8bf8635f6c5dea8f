"""A worker's link to the coordinator.

Theory of operation: one DEALER socket, owned by :class:`CoordinatorLink`. The
sender loop says Hello until a Welcome arrives, then sends a heartbeat every
``heartbeat_interval_s`` and the worker's cumulative counters every
``stats_interval_s`` when they changed (and with each heartbeat regardless, so a
restarted coordinator relearns them). The receive loop applies Welcome and
ConfigSnapshot messages and completes stats queries. When nothing has been
heard from the coordinator for ``heartbeat_timeout_s`` the link counts itself
disconnected and goes back to saying Hello; the worker keeps serving from its
local state meanwhile (fail-open). Counters are never reset, so nothing is lost
across a disconnection.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import trio
import zmq

from coordinator.transport import ZmqChannel
from sim import protocol
from sim.errors import ProtocolError
from sim.ratelimit import Ask, LeaseAnswer
from sim.settings import Settings
from sim.stats import RequestCounters

log = logging.getLogger("understudy.worker.link")

CLOSE_LINGER_MS = 1000


class CoordinatorLink:
    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        incarnation: str,
        counters: RequestCounters,
        on_config: Callable[[int, dict[str, Any]], None],
    ) -> None:
        self._settings = settings
        self.worker_id = worker_id
        self.incarnation = incarnation
        self._counters = counters
        self._on_config = on_config
        self._channel: ZmqChannel | None = None
        self._seq = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._pending: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._last_heard_s = -float("inf")
        self._last_sent_counters: dict[str, Any] | None = None
        self.welcomed = trio.Event()
        self.config_version = 0
        self.cluster_offset_s: float | None = None
        self.started_s = trio.current_time()
        self.bad_frames = 0
        self.reset_epoch = 0

    @property
    def connected(self) -> bool:
        return trio.current_time() - self._last_heard_s <= self._settings.heartbeat_timeout_s

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the link up until cancelled."""
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.connect(self._settings.coordinator_url)
        self._channel = ZmqChannel(sock)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive_loop)
                task_status.started()
                await self._send_loop()
        finally:
            # Final counters and the Goodbye may still be queued: give them time to leave.
            self._channel.close(linger_ms=CLOSE_LINGER_MS)
            self._channel = None

    def _send(self, message: protocol.Message) -> None:
        if self._channel is not None:
            self._channel.send([protocol.encode(message)])

    def _hello(self) -> protocol.Hello:
        return protocol.Hello(self.worker_id, self.incarnation, os.getpid(), socket.gethostname())

    def report_stats(self, *, force: bool = False) -> None:
        """Send the cumulative counters if they changed since the last report (or if forced)."""
        snapshot = self._counters.snapshot()
        if not force and snapshot == self._last_sent_counters:
            return
        report = protocol.StatsReport(
            self.worker_id, self.incarnation, os.getpid(), next(self._seq), snapshot, self.reset_epoch
        )
        self._send(report)
        self._last_sent_counters = snapshot

    async def _send_loop(self) -> None:
        settings = self._settings
        self._send(self._hello())
        next_beat = trio.current_time() + settings.heartbeat_interval_s
        while True:
            await trio.sleep(settings.stats_interval_s)
            now = trio.current_time()
            if now >= next_beat:
                next_beat = now + settings.heartbeat_interval_s
                if not self.connected:
                    self._send(self._hello())
                self._send(protocol.Heartbeat(self.worker_id, self.incarnation, now))
                self.report_stats(force=True)
            else:
                self.report_stats()

    async def _receive_loop(self) -> None:
        assert self._channel is not None
        while True:
            frames = await self._channel.receive()
            try:
                if len(frames) != 1:
                    raise ProtocolError(f"{len(frames)} frames, expected 1")
                message = protocol.decode(frames[0])
            except ProtocolError as error:
                self.bad_frames += 1
                log.warning("dropped a bad frame from the coordinator: %s", error)
                continue
            was_connected = self.connected
            self._last_heard_s = trio.current_time()
            if not was_connected and self.welcomed.is_set():
                log.info("coordinator is back")
            self._apply(message)

    def _apply(self, message: protocol.Message) -> None:
        if isinstance(message, protocol.Welcome):
            self.cluster_offset_s = message.cluster_elapsed_s - trio.current_time()
            self._set_config(message.config_version, message.config)
            if not self.welcomed.is_set():
                log.info("joined the cluster as %s", self.worker_id)
            self.welcomed.set()
        elif isinstance(message, protocol.ConfigSnapshot):
            self._set_config(message.version, message.config)
        elif isinstance(message, protocol.StatsReset):
            # What we counted until now is the reset's baseline: say it at once, tagged.
            self.reset_epoch = message.epoch
            self.report_stats(force=True)
        elif isinstance(message, protocol.StatsReply | protocol.AdminReply | protocol.LeaseReply):
            pending = self._pending.get(message.query_id)
            if pending is not None:
                pending[1].append(_answer(message))
                pending[0].set()

    def _set_config(self, version: int, config: dict[str, Any]) -> None:
        if version != self.config_version:
            self.config_version = version
            self._on_config(version, config)

    async def query_stats(self, *, timeout_s: float) -> dict[str, Any] | None:
        """The cluster-wide stats from the coordinator, or None if it did not answer in time."""
        # Our own latest counters go first, so the answer includes this worker's requests.
        self.report_stats()
        stats = await self._ask(lambda query_id: protocol.StatsQuery(query_id), timeout_s=timeout_s)
        return stats if isinstance(stats, dict) else None

    async def query_metrics(self, *, timeout_s: float) -> dict[str, Any] | None:
        """The cluster-wide /metrics series (``series``, ``workers_alive``), or None if it did not answer in time."""
        self.report_stats()
        return await self.admin("metrics", {}, timeout_s=timeout_s)

    async def admin(self, action: str, payload: dict[str, Any], *, timeout_s: float) -> dict[str, Any] | None:
        """Ask the coordinator to carry out an admin action; None if it did not answer in time."""
        result = await self._ask(lambda query_id: protocol.AdminRequest(query_id, action, payload), timeout_s=timeout_s)
        return result if isinstance(result, dict) else None

    async def lease(self, asks: Sequence[Ask], *, timeout_s: float) -> LeaseAnswer | None:
        """The coordinator's answer to a lease; None at once when it is unreachable, or after ``timeout_s``."""
        if not self.connected:
            return None
        answer = await self._ask(lambda query_id: protocol.lease_request(query_id, asks), timeout_s=timeout_s)
        return answer if isinstance(answer, LeaseAnswer) else None

    def give_back(self, returns: list[tuple[str, float]]) -> None:
        """Hand tokens back to the coordinator's buckets (lost harmlessly if it is away)."""
        self._send(protocol.LeaseReturn([[name, amount] for name, amount in returns]))

    async def _ask(self, question: Callable[[int], protocol.Message], *, timeout_s: float) -> Any:
        query_id = next(self._query_ids)
        done = trio.Event()
        result: list[Any] = []
        self._pending[query_id] = (done, result)
        try:
            self._send(question(query_id))
            with trio.move_on_after(timeout_s):
                await done.wait()
        finally:
            del self._pending[query_id]
        return result[0] if result else None

    def say_goodbye(self) -> None:
        """Final counters and a Goodbye, so the coordinator knows this stop was on purpose."""
        self.report_stats(force=True)
        self._send(protocol.Goodbye(self.worker_id, self.incarnation))


def _answer(message: protocol.StatsReply | protocol.AdminReply | protocol.LeaseReply) -> Any:
    if isinstance(message, protocol.StatsReply):
        return message.stats
    if isinstance(message, protocol.AdminReply):
        return message.result
    try:
        return protocol.answer_of(message)
    except ProtocolError as error:
        log.warning("dropped a bad lease reply: %s", error)
        return None
