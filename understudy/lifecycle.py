"""What every understudy process does to start and stop well: logging, signals, orphan watch.

A process started by `serve` stops on SIGTERM only (its supervisor decides the
order of shutdown; a terminal's Ctrl-C reaches the supervisor) and stops by
itself if its supervisor disappears. A process started alone stops on SIGINT
or SIGTERM. A second signal during shutdown ends the process at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import trio

ORPHAN_POLL_S = 0.5


def configure_logging(level: str, role: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def prepare_signals(*, supervised: bool) -> tuple[int, ...]:
    """Call before ``trio.run``; returns the signals that ask this process to stop."""
    if supervised:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # SIGHUP reloads rules through the coordinator; sent to the whole
        # process group it must not end a worker (its default action).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return (signal.SIGTERM,)
    return (signal.SIGINT, signal.SIGTERM)


async def stop_on_signals(stop: trio.Event, signals: tuple[int, ...]) -> None:
    with trio.open_signal_receiver(*signals) as received:
        async for signum in received:
            if stop.is_set():
                logging.getLogger("understudy").warning("second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            logging.getLogger("understudy").info("%s: shutting down", signal.Signals(signum).name)
            stop.set()


async def stop_when_orphaned(parent_pid: int, stop: trio.Event) -> None:
    while os.getppid() == parent_pid:
        await trio.sleep(ORPHAN_POLL_S)
    logging.getLogger("understudy").warning("supervisor %d is gone: shutting down", parent_pid)
    stop.set()
