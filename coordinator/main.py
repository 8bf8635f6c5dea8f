"""The coordinator process: run the cluster state until told to stop."""

from __future__ import annotations

from functools import partial

import trio
import zmq

from coordinator.server import DEFAULT_BIND, run_coordinator
from sim.settings import Settings
from understudy import lifecycle


def run_coordinator_process(
    settings: Settings, *, parent_pid: int | None = None, config_path: str | None = None
) -> int:
    lifecycle.configure_logging(settings.log_level, "coordinator")
    signals = lifecycle.prepare_signals(supervised=parent_pid is not None)
    try:
        trio.run(_main, settings, parent_pid, signals, config_path)
    finally:
        zmq.Context.instance().term()
    return 0


async def _main(settings: Settings, parent_pid: int | None, signals: tuple[int, ...], config_path: str | None) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifecycle.stop_on_signals, stop, signals)
        if parent_pid is not None:
            nursery.start_soon(lifecycle.stop_when_orphaned, parent_pid, stop)
        bind = settings.coordinator_bind or DEFAULT_BIND
        await nursery.start(partial(run_coordinator, settings, bind=bind, config_path=config_path))
        await stop.wait()
        nursery.cancel_scope.cancel()
