"""`understudy serve`: one coordinator and N workers on this machine, supervised.

Theory of operation: the supervisor binds the HTTP socket once and hands it to
every worker (inherited file descriptor), so a port of 0 resolves to one port
for all, and a restarted worker accepts on the very socket its predecessor did:
no connection is refused while it restarts. Each child runs in a task that
restarts it when it dies (with a back-off for crash loops). Children get the
effective settings as one JSON document, so they see exactly what the
supervisor validated.

Shutdown (SIGINT or SIGTERM): SIGTERM to the workers, which stop accepting and
let in-flight requests finish for up to ``grace_period_s``; then SIGTERM to the
coordinator. A child still running after its deadline is killed. Exit code 0.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio

from sim.settings import Settings, settings_document
from understudy import lifecycle
from workers.main import open_listener

log = logging.getLogger("understudy.serve")

SETTINGS_ENV = "UNDERSTUDY__EFFECTIVE_SETTINGS"
# The config file `serve` was started with: the coordinator re-reads it on SIGHUP.
CONFIG_PATH_ENV = "UNDERSTUDY__CONFIG_PATH"
RESTART_DELAY_MIN_S = 0.1
RESTART_DELAY_MAX_S = 5.0
# A child that ran this long before dying is not crash-looping: restart it at once.
HEALTHY_RUN_S = 10.0
# Beyond the grace period: time for final stats reports and process exit.
EXIT_MARGIN_S = 3.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: trio.Process | None = None
    stopping: bool = False


class Supervisor:
    def __init__(
        self, settings: Settings, *, listen_fd: int, coordinator_bind: str, config_path: str | None = None
    ) -> None:
        self._settings = settings
        self._listen_fd = listen_fd
        base = [sys.executable, "-m", "understudy"]
        supervised = ["--parent-pid", str(os.getpid())]
        self.coordinator = Child("coordinator", [*base, "coordinator", *supervised])
        self.workers = [
            Child(
                f"w{index}",
                [*base, "worker", *supervised, "--listen-fd", str(listen_fd), "--worker-id", f"w{index}"],
            )
            for index in range(settings.workers)
        ]
        document = settings_document(settings)
        document["coordinator_bind"] = coordinator_bind
        document["coordinator_url"] = coordinator_bind
        self._env = {**os.environ, SETTINGS_ENV: json.dumps(document)}
        if config_path is not None:
            self._env[CONFIG_PATH_ENV] = os.path.abspath(config_path)
        # Set as soon as a stop signal arrives: a child that exits then (a signal
        # sent to the whole process group reaches it too) is not restarted.
        self._stop = trio.Event()

    async def run(self, stop: trio.Event) -> None:
        self._stop = stop
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_running, self.coordinator)
            for worker in self.workers:
                nursery.start_soon(self._keep_running, worker)
            nursery.start_soon(self._forward_sighup)
            await stop.wait()
            await self._stop_all(self.workers, self._settings.grace_period_s + EXIT_MARGIN_S)
            await self._stop_all([self.coordinator], EXIT_MARGIN_S)
            nursery.cancel_scope.cancel()

    async def _forward_sighup(self) -> None:
        """SIGHUP reloads the rules: the coordinator re-reads the config file and tells every worker."""
        with trio.open_signal_receiver(signal.SIGHUP) as received:
            async for _ in received:
                process = self.coordinator.process
                if process is not None and process.returncode is None:
                    log.info("SIGHUP: asking the coordinator to reload the rules")
                    process.send_signal(signal.SIGHUP)

    async def _keep_running(self, child: Child) -> None:
        delay = RESTART_DELAY_MIN_S
        while not (child.stopping or self._stop.is_set()):
            started = trio.current_time()
            child.process = await trio.lowlevel.open_process(
                child.argv, env=self._env, pass_fds=(self._listen_fd,), stdin=subprocess.DEVNULL
            )
            code = await child.process.wait()
            if child.stopping or self._stop.is_set():
                return
            log.warning("%s (pid %d) exited with %s; restarting", child.name, child.process.pid, code)
            delay = (
                RESTART_DELAY_MIN_S
                if trio.current_time() - started > HEALTHY_RUN_S
                else min(delay * 2, RESTART_DELAY_MAX_S)
            )
            await trio.sleep(delay)

    async def _stop_all(self, children: Sequence[Child], timeout_s: float) -> None:
        running = []
        for child in children:
            child.stopping = True
            if child.process is not None and child.process.returncode is None:
                child.process.send_signal(signal.SIGTERM)
                running.append(child.process)
        with trio.move_on_after(timeout_s):
            for process in running:
                await process.wait()
        for process in running:
            if process.returncode is None:
                log.warning("pid %d did not stop in time: killing it", process.pid)
                process.kill()
                await process.wait()


def serve(settings: Settings, *, config_path: str | None = None) -> int:
    """Run `understudy serve` until SIGINT or SIGTERM; returns the exit code."""
    lifecycle.configure_logging(settings.log_level, "serve")
    listener = open_listener(settings.host, settings.port, backlog=settings.backlog)
    host, port = listener.getsockname()[:2]
    with tempfile.TemporaryDirectory(prefix="understudy-") as private_dir:
        bind = settings.coordinator_bind or f"ipc://{private_dir}/coordinator"
        supervisor = Supervisor(settings, listen_fd=listener.fileno(), coordinator_bind=bind, config_path=config_path)
        shown_host = f"[{host}]" if ":" in host else host
        print(
            f"understudy serving http://{shown_host}:{port} with {settings.workers} workers "
            f"(coordinator {bind}); Ctrl-C stops",
            flush=True,
        )
        signals = lifecycle.prepare_signals(supervised=False)
        trio.run(_main, supervisor, signals)
    listener.close()
    log.info("stopped")
    return 0


async def _main(supervisor: Supervisor, signals: tuple[int, ...]) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifecycle.stop_on_signals, stop, signals)
        await supervisor.run(stop)
        nursery.cancel_scope.cancel()


def inherited_settings(environ: Mapping[str, str]) -> dict[str, object] | None:
    """The settings document a supervisor handed to this child process, if any."""
    raw = environ.get(SETTINGS_ENV)
    return json.loads(raw) if raw else None
