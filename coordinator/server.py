"""The coordinator process: owns the cluster's global state, talks to workers over ZeroMQ.

Theory of operation: one ROUTER socket. A receive loop decodes each frame and
dispatches it through a table of small handlers; a ticker sends heartbeats to
every live worker and marks workers dead after ``heartbeat_timeout_s`` of
silence. Any message from a (worker, incarnation) the coordinator has not met
(a new worker, a restarted one, or every worker after the coordinator itself
restarted) registers it and is answered with a Welcome carrying the cluster's
clock and config, so workers resync without a separate handshake path. A frame
that does not decode is counted in ``bad_frames`` and dropped.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import trio
import zmq

from coordinator.transport import ZmqChannel
from sim import protocol
from sim.errors import ProtocolError, SettingsError
from sim.mocker import MockerConfigError, load_mocker
from sim.ratelimit import Buckets
from sim.settings import Settings, read_config_file
from sim.stats import ClusterStats

log = logging.getLogger("understudy.coordinator")

DEFAULT_BIND = "tcp://127.0.0.1:5555"
# How long a stats reset waits for every live worker's exact baseline (they answer in milliseconds).
RESET_WAIT_S = 0.5


def config_document(settings: Settings) -> dict[str, Any]:
    """The rule/config document every worker follows (versioned by the coordinator)."""
    return {"models": list(settings.models), "mocker": settings.mocker}


class Coordinator:
    """Global state plus the handlers that change it; sockets stay in :func:`run_coordinator`."""

    def __init__(self, settings: Settings, channel: ZmqChannel, *, now_s: float) -> None:
        self._settings = settings
        self._channel = channel
        self.stats = ClusterStats(started_s=now_s)
        self.buckets = Buckets()
        self.config_version = 1
        self.config = config_document(settings)
        self._routes: dict[str, bytes] = {}
        # Reset requests waiting for every live worker's exact baseline: (route, query id, deadline).
        self._resets: list[tuple[bytes, int, float]] = []
        self._handlers: dict[type, Callable[[bytes, Any, float], None]] = {
            protocol.Hello: self._on_hello,
            protocol.Heartbeat: self._on_heartbeat,
            protocol.StatsReport: self._on_stats,
            protocol.StatsQuery: self._on_query,
            protocol.AdminRequest: self._on_admin,
            protocol.Goodbye: self._on_goodbye,
            protocol.LeaseRequest: self._on_lease,
            protocol.LeaseReturn: self._on_lease_return,
        }

    def handle(self, frames: list[bytes], *, now_s: float) -> None:
        if len(frames) != 2:
            self.stats.bad_frames += 1
            return
        route, payload = frames
        try:
            message = protocol.decode(payload)
            handler = self._handlers[type(message)]
        except (ProtocolError, KeyError) as error:
            self.stats.bad_frames += 1
            log.warning("dropped a bad frame: %s", error)
            return
        try:
            handler(route, message, now_s)
        except ProtocolError as error:  # a well-formed frame with bad contents (a lease's asks)
            self.stats.bad_frames += 1
            log.warning("dropped a bad %s: %s", message.TAG, error)

    def _send(self, route: bytes, message: protocol.Message) -> None:
        self._channel.send([route, protocol.encode(message)])

    def _meet(self, route: bytes, worker_id: str, incarnation: str, now_s: float, pid: int = 0, host: str = "") -> bool:
        """Note a message from a worker; welcome it if it is new to us (True then)."""
        self._routes[worker_id] = route
        fresh = self.stats.seen(worker_id, incarnation, now_s=now_s, pid=pid, host=host)
        if fresh:
            log.info("worker %s joined (incarnation %s, pid %s)", worker_id, incarnation, pid)
            self._welcome(route, worker_id, incarnation, now_s)
        return fresh

    def _welcome(self, route: bytes, worker_id: str, incarnation: str, now_s: float) -> None:
        elapsed = now_s - self.stats.started_s
        self._send(route, protocol.Welcome(worker_id, incarnation, elapsed, self.config_version, self.config))

    def _on_hello(self, route: bytes, message: protocol.Hello, now_s: float) -> None:
        # A hello is always answered: the worker may have missed the first welcome.
        if not self._meet(route, message.worker_id, message.incarnation, now_s, message.pid, message.host):
            self._welcome(route, message.worker_id, message.incarnation, now_s)

    def _on_heartbeat(self, route: bytes, message: protocol.Heartbeat, now_s: float) -> None:
        self._meet(route, message.sender, message.incarnation, now_s)

    def _on_stats(self, route: bytes, message: protocol.StatsReport, now_s: float) -> None:
        self._meet(route, message.worker_id, message.incarnation, now_s, pid=message.pid)
        self.stats.report(
            message.worker_id, message.incarnation, message.seq, message.counters, reset_epoch=message.reset_epoch
        )
        self.answer_resets(now_s)

    def _on_query(self, route: bytes, message: protocol.StatsQuery, now_s: float) -> None:
        self._send(route, protocol.StatsReply(message.query_id, self.stats.snapshot(now_s=now_s)))

    def _on_admin(self, route: bytes, message: protocol.AdminRequest, now_s: float) -> None:
        if message.action == "reset_stats":
            self._reset_stats(route, message.query_id, now_s)
            return
        if message.action == "get_rules":
            result: dict[str, Any] = {"ok": True, "version": self.config_version, "document": self.config.get("mocker")}
        elif message.action == "metrics":
            result = {"ok": True, "series": self.stats.metrics(), "workers_alive": len(self.stats.alive_workers())}
        elif message.action == "put_rules":
            result = self.put_rules(message.payload.get("document"))
        else:
            result = {"ok": False, "errors": [f"unknown admin action {message.action!r}"]}
        self._send(route, protocol.AdminReply(message.query_id, result))

    def _reset_stats(self, route: bytes, query_id: int, now_s: float) -> None:
        """Open a reset epoch, tell every live worker, and answer once all their baselines are in.

        The answer waits at most ``RESET_WAIT_S``: a worker that does not answer by
        then keeps its provisional baseline (the counters held at the reset).
        """
        reset = protocol.encode(protocol.StatsReset(self.stats.reset()))
        for worker_id in self.stats.alive_workers():
            worker_route = self._routes.get(worker_id)
            if worker_route is not None:
                self._channel.send([worker_route, reset])
        self._resets.append((route, query_id, now_s + RESET_WAIT_S))
        self.answer_resets(now_s)

    def answer_resets(self, now_s: float) -> None:
        """Answer the reset requests whose baselines are all in, or whose wait is over."""
        if not self._resets:
            return
        settled = self.stats.reset_settled()
        waiting = []
        for route, query_id, deadline in self._resets:
            if settled or now_s >= deadline:
                self._send(route, protocol.AdminReply(query_id, {"ok": True}))
            else:
                waiting.append((route, query_id, deadline))
        self._resets = waiting

    def put_rules(self, document: Any) -> dict[str, Any]:
        """Adopt a new rules document if it is valid and hand it to every worker; else keep the old one."""
        errors = self._check_rules(document)
        if errors:
            log.warning("rules refused (version %s stays): %s", self.config_version, "; ".join(errors))
            return {"ok": False, "version": self.config_version, "errors": errors}
        self.config_version += 1
        self.config = {**self.config, "mocker": document}
        snapshot = protocol.encode(protocol.ConfigSnapshot(self.config_version, self.config))
        for worker_id in self.stats.alive_workers():
            route = self._routes.get(worker_id)
            if route is not None:
                self._channel.send([route, snapshot])
        log.info("rules version %s handed to %d workers", self.config_version, len(self.stats.alive_workers()))
        return {"ok": True, "version": self.config_version}

    def _check_rules(self, document: Any) -> list[str]:
        try:
            load_mocker(document)
        except MockerConfigError as error:
            return list(error.errors)
        return []

    def _on_lease(self, route: bytes, message: protocol.LeaseRequest, now_s: float) -> None:
        asks = protocol.asks_of(message)
        answer = self.buckets.lease(asks, now_s, workers=max(1, len(self.stats.alive_workers())))
        self._send(route, protocol.lease_reply(message.query_id, answer))

    def _on_lease_return(self, route: bytes, message: protocol.LeaseReturn, now_s: float) -> None:
        self.buckets.give_back(protocol.returns_of(message), now_s)

    def _on_goodbye(self, route: bytes, message: protocol.Goodbye, now_s: float) -> None:
        self.stats.goodbye(message.worker_id, message.incarnation)
        log.info("worker %s stopped (incarnation %s)", message.worker_id, message.incarnation)

    def tick(self, *, now_s: float) -> None:
        """Heartbeat every live worker; mark the silent ones dead."""
        for worker_id in self.stats.sweep(now_s=now_s, timeout_s=self._settings.heartbeat_timeout_s):
            log.warning("worker %s missed its heartbeats: marked dead", worker_id)
        beat = protocol.encode(protocol.Heartbeat(protocol.COORDINATOR, "", now_s))
        for worker_id in self.stats.alive_workers():
            route = self._routes.get(worker_id)
            if route is not None:
                self._channel.send([route, beat])


async def run_coordinator(
    settings: Settings,
    *,
    bind: str,
    config_path: str | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the cluster state on ``bind`` until cancelled; reports the bound endpoint.

    With ``config_path``, SIGHUP re-reads that file and adopts its ``mocker``
    section as a new rules version (a bad one is refused and logged).
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(bind)
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    channel = ZmqChannel(sock)
    coordinator = Coordinator(settings, channel, now_s=trio.current_time())
    log.info("coordinator listening on %s", endpoint)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ticker, coordinator, settings.heartbeat_interval_s)
            nursery.start_soon(_reset_deadlines, coordinator)
            if settings.tpm > 0:
                nursery.start_soon(_announce_timer, settings.tpm, settings.tpm_duration, coordinator.stats.started_s)
            if config_path is not None:
                nursery.start_soon(_reload_on_sighup, coordinator, config_path)
            task_status.started(endpoint)
            while True:
                frames = await channel.receive()
                coordinator.handle(frames, now_s=trio.current_time())
    finally:
        channel.close()


async def _ticker(coordinator: Coordinator, interval_s: float) -> None:
    while True:
        await trio.sleep(interval_s)
        coordinator.tick(now_s=trio.current_time())


async def _announce_timer(after_s: float, duration_s: float, started: float) -> None:
    """One log line for the cluster when the 429 window opens (and one when it closes)."""
    await trio.sleep_until(started + after_s)
    log.info("TPM (429) scenario triggered after %g seconds", after_s)
    if duration_s > 0:
        await trio.sleep_until(started + after_s + duration_s)
        log.info("TPM (429) scenario ended after %g more seconds", duration_s)


async def _reset_deadlines(coordinator: Coordinator) -> None:
    while True:
        await trio.sleep(RESET_WAIT_S / 5)
        coordinator.answer_resets(trio.current_time())


async def _reload_on_sighup(coordinator: Coordinator, config_path: str) -> None:
    with trio.open_signal_receiver(signal.SIGHUP) as received:
        async for _ in received:
            try:
                document = read_config_file(config_path).get("mocker")
            except SettingsError as error:
                log.warning("SIGHUP: %s; rules version %s stays", error, coordinator.config_version)
                continue
            result = coordinator.put_rules(document)
            if result["ok"]:
                log.info("SIGHUP: rules reloaded from %s", config_path)
