"""Real understudy processes on free ports, for tests that drive them like a user would.

Every wait here is bounded and waits on a condition (a line printed, a status
answered, a count reached), never on time passing.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
T = TypeVar("T")

# Short heartbeats so liveness changes show within a test's patience; the stats
# interval stays at its default, which the "counted within a second" test is about.
FAST_CLUSTER = ["--heartbeat-interval-s", "0.2", "--heartbeat-timeout-s", "1.0"]


def wait_for(condition: Callable[[], T | None], *, timeout_s: float, what: str, poll_s: float = 0.02) -> T:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = condition()
        except httpx.TransportError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A started understudy process whose stderr goes to a file (so its pipe never fills)."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("UNDERSTUDY__EFFECTIVE_SETTINGS", None)
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "understudy", *self.argv],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        return self

    def first_line(self, timeout_s: float = START_TIMEOUT_S) -> str:
        assert self.popen is not None and self.popen.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.popen.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                raise AssertionError(f"no output within {timeout_s} s; log:\n{self.log()}")
        line = self.popen.stdout.readline().decode()
        if not line:
            raise AssertionError(f"exited with {self.popen.wait(5)} before printing; log:\n{self.log()}")
        # The rest of stdout (the JSON access log) is drained into a file, so its pipe never fills.
        threading.Thread(target=self._drain, args=(self.popen.stdout,), daemon=True).start()
        return line

    def _drain(self, stdout: IO[bytes]) -> None:
        with self.out_path.open("wb") as log, contextlib.suppress(ValueError, OSError):  # closed at stop
            for line in stdout:
                log.write(line)
                log.flush()

    @property
    def out_path(self) -> Path:
        return self.log_path.with_suffix(".stdout")

    def log(self) -> str:
        """What the process wrote: its stderr log, then its stdout after the first line (the access log)."""
        out = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        return self.log_path.read_text(errors="replace") + out

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout_s)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_S)
        if self.popen is not None and self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


@dataclass
class Server:
    """`understudy serve` as a user starts it, with its base URL."""

    process: Process
    url: str
    workers: int
    admin_token: str | None = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stats(self) -> dict[str, Any]:
        with self.http() as client:
            headers = {"authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
            response = client.get("/admin/stats", headers=headers)
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def wait_ready(self) -> None:
        wait_for(
            lambda: self.stats()["workers_alive"] == self.workers,
            timeout_s=START_TIMEOUT_S,
            what=f"{self.workers} workers alive",
        )


def start_server(tmp_path: Path, *args: str, workers: int = 2) -> Server:
    log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
    process = Process(["serve", "--port", "0", "--workers", str(workers), *FAST_CLUSTER, *args], log_path).start()
    line = process.first_line()
    url = line.split()[2]
    assert url.startswith("http://127.0.0.1:"), line
    token = args[args.index("--admin-token") + 1] if "--admin-token" in args else None
    server = Server(process, url, workers, token)
    try:
        server.wait_ready()
    except BaseException:
        process.stop()
        print(process.log())
        raise
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared two-worker cluster for tests that only read from it."""
    running = start_server(tmp_path_factory.mktemp("serve"))
    yield running
    running.process.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a cluster of one's own (for tests that kill or stop things)."""
    started: list[Server] = []

    def start(*args: str, workers: int = 2) -> Server:
        running = start_server(tmp_path, *args, workers=workers)
        started.append(running)
        return running

    yield start
    for running in started:
        running.process.stop()
