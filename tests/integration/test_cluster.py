"""The cluster as an operator sees it: restarts, shutdown, roles started alone, bad frames."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import zmq

from sim import protocol
from tests.integration.conftest import FAST_CLUSTER, Process, Server, free_port, wait_for

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def send_chats(server: Server, count: int) -> None:
    with server.http() as http:
        for _ in range(count):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


def worker_entry(stats: dict[str, Any], worker_id: str) -> dict[str, Any]:
    (entry,) = [worker for worker in stats["workers"] if worker["id"] == worker_id]
    return entry


def test_killed_worker_is_restarted_and_its_counts_are_kept(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    send_chats(server, 30)
    stats = wait_for(lambda: (s := server.stats())["total_requests"] == 30 and s, timeout_s=2, what="30 counted")
    victim = max(stats["workers"], key=lambda worker: worker["requests"])
    assert victim["requests"] > 0

    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        entry = worker_entry(server.stats(), victim["id"])
        return entry if entry["pid"] != victim["pid"] and entry["alive"] else None

    entry = wait_for(restarted, timeout_s=30, what=f"{victim['id']} to be restarted")
    assert entry["restarts"] == 1
    assert entry["incarnation"] != victim["incarnation"]
    assert entry["requests"] == victim["requests"]
    assert server.stats()["total_requests"] == 30

    send_chats(server, 20)
    after = wait_for(lambda: (s := server.stats())["total_requests"] >= 50 and s, timeout_s=2, what="50 counted")
    assert after["total_requests"] == 50
    assert after["workers_alive"] == 2


def test_sigterm_lets_an_inflight_stream_finish_and_exits_zero(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--grace-period-s", "20", workers=1)
    body = {**CHAT, "max_tokens": 30000, "ignore_eos": True, "stream": True}
    received: list[bytes] = []
    with (
        httpx.Client(base_url=server.url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        chunks = response.iter_bytes()
        received.append(next(chunks))
        server.process.signal(signal.SIGTERM)
        received.extend(chunks)
    assert b"".join(received).endswith(b'"finish_reason":"length"}]}\n\ndata: [DONE]\n\n')
    assert server.process.wait() == 0
    log = server.process.log()
    assert "restarting" not in log
    # Refused once stopped: nobody listens on the port any more.
    try:
        httpx.get(server.url + "/health", timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("server still answering after shutdown")


def test_sigint_stops_everything_with_exit_zero(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    pids = [worker["pid"] for worker in server.stats()["workers"]]
    server.process.signal(signal.SIGINT)
    assert server.process.wait() == 0
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived the supervisor")


def start_role(tmp_path: Path, *argv: str) -> Process:
    return Process([*argv, *FAST_CLUSTER], tmp_path / f"{argv[0]}-{len(list(tmp_path.iterdir()))}.log").start()


def test_roles_started_alone_form_one_cluster(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coordinator = start_role(tmp_path, "coordinator", "--bind", endpoint)
    ports = {"alpha": free_port(), "beta": free_port()}
    workers = {
        name: start_role(tmp_path, "worker", "--coordinator", endpoint, "--port", str(port), "--worker-id", name)
        for name, port in ports.items()
    }
    try:
        alpha = httpx.Client(base_url=f"http://127.0.0.1:{ports['alpha']}", timeout=10)
        stats = wait_for(
            lambda: (s := alpha.get("/admin/stats").json()).get("workers_alive") == 2 and s,
            timeout_s=60,
            what="both workers to join",
        )
        assert {worker["id"] for worker in stats["workers"]} == {"alpha", "beta"}
        assert alpha.post("/v1/chat/completions", json=CHAT).headers["x-understudy-worker"] == "alpha"

        # A dead worker is found by its missing heartbeats.
        workers["beta"].popen.kill()  # type: ignore[union-attr]
        wait_for(
            lambda: worker_entry(alpha.get("/admin/stats").json(), "beta")["alive"] is False,
            timeout_s=5,
            what="beta to be marked dead",
        )

        # Garbage on the coordinator's socket is counted, and the coordinator keeps serving.
        context = zmq.Context()
        intruder = context.socket(zmq.DEALER)
        intruder.connect(endpoint)
        for frame in (b"\x00garbage", msgpack.packb([protocol.PROTOCOL_VERSION, "nope"]), msgpack.packb({"a": 1})):
            intruder.send(frame)
        intruder.send_multipart([b"two", b"frames"])
        intruder.close(linger=5000)
        context.term()  # returns once the frames are delivered
        stats = wait_for(
            lambda: (s := alpha.get("/admin/stats").json())["bad_frames"] >= 4 and s,
            timeout_s=5,
            what="bad frames to be counted",
        )
        assert stats["bad_frames"] == 4
        assert worker_entry(stats, "alpha")["alive"]
        alpha.close()
    finally:
        for process in (*workers.values(), coordinator):
            process.stop()
    assert "Traceback" not in coordinator.log()


def test_worker_serves_while_coordinator_is_away_and_resyncs(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/coordinator"
    port = free_port()
    worker = start_role(tmp_path, "worker", "--coordinator", endpoint, "--port", str(port), "--worker-id", "solo")
    coordinator: Process | None = None
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_for(lambda: http.get("/health").status_code == 200, timeout_s=60, what="worker up")
        assert http.get("/readyz").status_code == 503
        assert http.get("/admin/stats").status_code == 503
        for _ in range(5):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        coordinator = start_role(tmp_path, "coordinator", "--bind", endpoint)
        stats = wait_for(
            lambda: (r := http.get("/admin/stats")).status_code == 200 and r.json()["total_requests"] == 5 and r.json(),
            timeout_s=30,
            what="counts served while alone to reach the coordinator",
        )
        assert worker_entry(stats, "solo")["requests"] == 5
        assert stats["served_without_coordinator"] == 5  # fail-open, counted
        assert http.get("/readyz").status_code == 200
        http.close()
    finally:
        worker.stop()
        if coordinator is not None:
            coordinator.stop()


def test_fail_closed_answers_503_until_the_coordinator_is_there(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/coordinator"
    port = free_port()
    argv = ("worker", "--coordinator", endpoint, "--port", str(port), "--coordinator-down", "fail-closed")
    worker = start_role(tmp_path, *argv)
    coordinator: Process | None = None
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_for(lambda: http.get("/health").status_code == 200, timeout_s=60, what="worker up")
        refused = http.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"
        claude = http.post("/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": []})
        assert claude.status_code == 503 and claude.json()["error"]["type"] == "api_error"
        coordinator = start_role(tmp_path, "coordinator", "--bind", endpoint)
        wait_for(
            lambda: http.post("/v1/chat/completions", json=CHAT).status_code == 200,
            timeout_s=30,
            what="answers once the coordinator is reachable",
        )
        http.close()
    finally:
        worker.stop()
        if coordinator is not None:
            coordinator.stop()


def test_concurrent_admin_queries_each_get_their_answer(server: Server) -> None:
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            assert server.stats()["workers_alive"] == 2
        except BaseException as error:  # collected for the main thread to raise
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
