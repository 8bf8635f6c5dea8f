"""A worker process: the ASGI app on Hypercorn/trio, plus its link to the coordinator.

Shutdown: on the stop signal Hypercorn stops accepting, lets in-flight requests
finish for up to ``grace_period_s``, then the link sends the final counters and
a Goodbye, and the ZeroMQ context gets a bounded time to deliver them.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import sys
from pathlib import Path

import trio
import zmq
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from sim.content import TextGenerator, build_vocabulary
from sim.faults import load_faults
from sim.keys import load_keys
from sim.latency import bifrost_latency, load_latency
from sim.mocker import load_mocker
from sim.plugin_loader import load_plugins
from sim.pricing import PricingTable, default_pricing, load_pricing
from sim.ratelimit import LimitsConfig, load_limits
from sim.replies import ContentPolicy, ReplyWriter
from sim.schema_values import value_for
from sim.settings import Settings
from sim.stats import RequestCounters
from sim.upstreams import parse_upstreams
from understudy import lifecycle
from workers.app import App
from workers.link import CoordinatorLink
from workers.upstream import Passthrough

log = logging.getLogger("understudy.worker")


def open_listener(host: str, port: int, *, backlog: int) -> socket.socket:
    """A listening TCP socket that other processes may share (inherited, or SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(settings: Settings, listen_fd: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"fd://{listen_fd}"]
    config.worker_class = "trio"
    config.keep_alive_timeout = settings.keep_alive_timeout_s
    config.graceful_timeout = settings.grace_period_s
    config.backlog = settings.backlog
    config.accesslog = None
    # Through our logging setup, once (Hypercorn would add a handler of its own).
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def reply_writer(settings: Settings, generator: TextGenerator) -> ReplyWriter:
    """The reply writer the content settings describe."""
    default = ContentPolicy(
        settings.content_mode, settings.content_text, settings.content_responses, big_payload=settings.big_payload
    )
    by_model = {
        model: ContentPolicy(content.mode, content.text, content.responses, big_payload=settings.big_payload)
        for model, content in settings.content_by_model.items()
    }
    return ReplyWriter(generator, default, by_model)


def build_passthrough(settings: Settings) -> Passthrough | None:
    """The upstream relay, when upstreams or cassettes are configured."""
    upstreams = parse_upstreams(settings.upstreams or [])
    if not upstreams and settings.replay is None:
        return None
    return Passthrough(
        upstreams,
        record_dir=Path(settings.record) if settings.record else None,
        replay_dir=Path(settings.replay) if settings.replay else None,
        miss=settings.replay_miss,
        timeout_s=settings.upstream_timeout_s,
    )


def run_worker(settings: Settings, *, listen_fd: int | None = None, parent_pid: int | None = None) -> int:
    """Run one worker process until it is told to stop; returns the exit code."""
    lifecycle.configure_logging(settings.log_level, "worker")
    configure_request_logs()
    worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    incarnation = f"{os.getpid()}-{secrets.token_hex(4)}"
    listener = None
    if listen_fd is None:
        listener = open_listener(settings.host, settings.port, backlog=settings.backlog)
        listen_fd = listener.fileno()
    signals = lifecycle.prepare_signals(supervised=parent_pid is not None)
    try:
        trio.run(_serve, settings, worker_id, incarnation, listen_fd, parent_pid, signals)
    finally:
        zmq.Context.instance().term()
        if listener is not None:
            listener.close()
    return 0


def built_in_pricing(overrides: dict[str, object] | None) -> PricingTable:
    """The built-in price list, with the config's entries first (an entry there wins)."""
    table = default_pricing()
    if not overrides:
        return table
    return PricingTable((*load_pricing(overrides).entries, *table.entries))


def built_limits(settings: Settings) -> LimitsConfig:
    """The ``limits`` section with the ``--limit-*`` flags over its cluster-wide values."""
    return load_limits(
        settings.limits, rpm=settings.limit_rpm, tpm=settings.limit_tpm, concurrency=settings.limit_concurrency
    )


def configure_request_logs() -> None:
    """Access-log lines go to stdout as bare JSON; raw request/response dumps to stderr as they are."""
    for name, stream in (("understudy.access", sys.stdout), ("understudy.raw", sys.stderr)):
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)


def cluster_elapsed_s(link: CoordinatorLink) -> float:
    """Seconds since the cluster started, by the coordinator's clock; this process's until it is heard."""
    offset = link.cluster_offset_s
    return trio.current_time() + (offset if offset is not None else -link.started_s)


async def _serve(
    settings: Settings,
    worker_id: str,
    incarnation: str,
    listen_fd: int,
    parent_pid: int | None,
    signals: tuple[int, ...],
) -> None:
    counters = RequestCounters()
    # Each worker gets its own reproducible stream when a seed is set.
    seed = None if settings.seed is None else f"{settings.seed}:{worker_id}"
    app: App | None = None

    def on_config(version: int, config: dict[str, object]) -> None:
        if app is not None:
            app.set_config(version, config)

    link = CoordinatorLink(
        settings, worker_id=worker_id, incarnation=incarnation, counters=counters, on_config=on_config
    )
    # faker builds its providers on first use (about 0.25 s): pay that now, not on a request.
    value_for({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}, random.Random(0))
    passthrough = build_passthrough(settings)
    app = App(
        worker_id=worker_id,
        models=settings.models,
        writer=reply_writer(settings, TextGenerator(build_vocabulary(), seed=seed)),
        counters=counters,
        link=link,
        max_body_bytes=settings.max_body_bytes,
        big_payload=settings.big_payload,
        admin_token=settings.admin_token,
        auth=settings.auth or None,
        faults=load_faults(settings.faults, percent=settings.failure_percent, jitter=settings.failure_jitter),
        timer=(settings.tpm, settings.tpm_duration or None) if settings.tpm > 0 else None,
        cluster_clock=lambda: cluster_elapsed_s(link),
        latency=load_latency(settings.latency_profiles, where="latency_profiles"),
        fallback_latency=bifrost_latency(settings.latency, settings.jitter),
        pricing=built_in_pricing(settings.pricing),
        limits=built_limits(settings),
        keys=load_keys(settings.keys),
        coordinator_down=settings.coordinator_down,
        access_log=settings.access_log,
        log_raw=settings.log_raw,
        mocker=load_mocker(settings.mocker),
        plugins=load_plugins(settings.plugins),
        passthrough=passthrough,
        seed=seed,
    )
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifecycle.stop_on_signals, stop, signals)
        if parent_pid is not None:
            nursery.start_soon(lifecycle.stop_when_orphaned, parent_pid, stop)
        await nursery.start(link.run)
        log.info("worker %s serving (incarnation %s)", worker_id, incarnation)
        await serve(app, hypercorn_config(settings, listen_fd), shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        link.say_goodbye()
        if passthrough is not None:
            await passthrough.aclose()
        nursery.cancel_scope.cancel()
