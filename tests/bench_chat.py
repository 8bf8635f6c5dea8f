"""Throughput of understudy's chat completions against a bare Hypercorn/trio app.

Run from the repository root (needs ``wrk`` on PATH)::

    python tests/bench_chat.py [--duration 5] [--warmup 1] [--rounds 3] [--connections 16]
                               [--max-tokens 64] [--workers 1,2] [--modes json,stream]

For each worker count and mode (``json``: one JSON body; ``stream``: SSE) it
starts ``understudy serve``, records the exact bytes of one reply, and serves
those same bytes from a bare raw ASGI app (``tests/bench_bare_app.py``) under
Hypercorn/trio with as many workers. Both are loaded with wrk (POST
/v1/chat/completions, ``ignore_eos`` so every reply is ``max_tokens`` long) in
alternating runs, ``--rounds`` each, and each side's median run is reported.
The table gives requests/s, p50 and p99 latency of both and their ratio: how
much of the bare server's throughput understudy keeps (target: at least 0.85). A standalone script, not a pytest test.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.85
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
CHAT_PATH = "/v1/chat/completions"
# Connection-level and framing headers are the server's own, not the reply's.
SERVER_HEADERS = {"date", "server", "content-length", "transfer-encoding", "connection", "keep-alive"}
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True, slots=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: str

    def cells(self) -> tuple[str, str, str]:
        return f"{self.requests_per_s:.0f}", f"{self.p50_ms:.2f}", f"{self.p99_ms:.2f}"


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    workers: int
    understudy: Load
    bare: Load

    @property
    def ratio(self) -> float:
        return self.understudy.requests_per_s / self.bare.requests_per_s if self.bare.requests_per_s else 0.0


def request_body(mode: str, max_tokens: int) -> bytes:
    messages = [{"role": "user", "content": "Say hello"}]
    # ignore_eos (as vLLM's bench sends it): every reply is exactly max_tokens long.
    body: dict[str, object] = {"model": "gpt-4o", "messages": messages, "max_tokens": max_tokens, "ignore_eos": True}
    if mode == "stream":
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def http_get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status), bytes(response.read())


def start(argv: Sequence[str], log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what it started
        process.wait(timeout=STOP_TIMEOUT_S)


def start_understudy(
    workers: int, log: IO[bytes], log_path: Path, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    bin_dir = Path(sys.executable).parent
    process = start([str(bin_dir / "understudy"), "serve", "--port", "0", "--workers", str(workers), *extra], log)
    found: list[str] = []

    def announced() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"understudy exited early:\n{log_path.read_text(errors='replace')}")
        found.extend(re.findall(r"serving (http://[^\s]+)", log_path.read_text(errors="replace"))[:1])
        return bool(found)

    wait_until(announced, "understudy's address")
    url = found[0]
    wait_until(lambda: http_get(url + "/health")[0] == 200, "understudy /health")
    wait_until(lambda: json.loads(http_get(url + "/admin/stats")[1])["workers_alive"] == workers, "workers")
    return process, url


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def capture(url: str, body: bytes, streaming: bool) -> dict[str, object]:
    """One reply as bench_bare_app reads it: status, headers, and its events (or its one body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", CHAT_PATH, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        headers = [
            [b64(name.lower().encode("latin-1")), b64(value.encode("latin-1"))]
            for name, value in response.getheaders()
            if name.lower() not in SERVER_HEADERS
        ]
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"capture got {response.status}: {payload[:300]!r}")
    events = [part + b"\n\n" for part in payload.split(b"\n\n") if part] if streaming else [payload]
    if b"".join(events) != payload:
        raise RuntimeError("the SSE body does not split into events ending in a blank line")
    return {"status": response.status, "headers": headers, "events": [b64(e) for e in events], "streaming": streaming}


def start_bare(workers: int, reply_path: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:  # a free port; Hypercorn binds it again right after
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", str(workers)]
    argv += ["--bind", f"127.0.0.1:{port}", "tests.bench_bare_app:app"]
    process = start(argv, log, env={**os.environ, "BENCH_BARE_REPLY": str(reply_path)})
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the bare Hypercorn app exited early")
        return http_get(url + "/health")[0] == 200

    wait_until(answers, "bare app")
    return process, url


def to_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * TIME_UNITS_MS[unit]


def run_wrk(url: str, script: Path, duration_s: float, connections: int) -> Load:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "-s", str(script), url + CHAT_PATH]
    output = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = re.findall(r"^\s*((?:Non-2xx or 3xx responses|Socket errors):.*)$", output, re.MULTILINE)
    return Load(float(rate.group(1)), to_ms(p50.group(1)), to_ms(p99.group(1)), "; ".join(errors))


def bench(mode: str, workers: int, args: argparse.Namespace, scratch: Path) -> Row:
    body = request_body(mode, args.max_tokens)
    script = scratch / f"{mode}.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body.decode()}]==]\n'
    )
    reply_path = scratch / f"reply-{mode}-{workers}.json"
    log_paths = {name: scratch / f"{name}-{mode}-{workers}.log" for name in ("understudy", "bare")}
    processes: list[subprocess.Popen[bytes]] = []
    loads: dict[str, list[Load]] = {"understudy": [], "bare": []}
    with log_paths["understudy"].open("wb") as us_log, log_paths["bare"].open("wb") as bare_log:
        try:
            process, us_url = start_understudy(workers, us_log, log_paths["understudy"])
            processes.append(process)
            reply_path.write_text(json.dumps(capture(us_url, body, mode == "stream")))
            process, bare_url = start_bare(workers, reply_path, bare_log)
            processes.append(process)
            urls = {"understudy": us_url, "bare": bare_url}
            if args.warmup > 0:
                for url in urls.values():
                    run_wrk(url, script, args.warmup, args.connections)
            # Alternate the two, swapping who goes first each round, and keep each side's
            # median: a shared machine's noise then falls on both sides alike.
            for round_index in range(args.rounds):
                order = ("understudy", "bare") if round_index % 2 == 0 else ("bare", "understudy")
                for name in order:
                    loads[name].append(run_wrk(urls[name], script, args.duration, args.connections))
        except BaseException:
            for name, path in log_paths.items():
                print(f"{name} log:\n{path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
        finally:
            for process in processes:
                stop(process)
    return Row(mode, workers, median_load(loads["understudy"]), median_load(loads["bare"]))


def median_load(loads: Sequence[Load]) -> Load:
    """The run with the median throughput (its latencies come with it)."""
    return sorted(loads, key=lambda load: load.requests_per_s)[len(loads) // 2]


def print_table(rows: Sequence[Row]) -> None:
    header = ("mode", "workers", "us req/s", "us p50", "us p99", "bare req/s", "bare p50", "bare p99", "ratio", "ok")
    lines = [header]
    for row in rows:
        verdict = "yes" if row.ratio >= TARGET_RATIO else "NO"
        lines.append(
            (row.mode, str(row.workers), *row.understudy.cells(), *row.bare.cells(), f"{row.ratio:.3f}", verdict)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    print(f"(latencies in ms; ratio = understudy req/s / bare req/s; target >= {TARGET_RATIO})")
    for row in rows:
        for name, load in (("understudy", row.understudy), ("bare", row.bare)):
            if load.errors:
                print(f"wrk errors, {row.mode} x{row.workers} {name}: {load.errors}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured wrk load first (0: none)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side; the median is reported")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--modes", default="json,stream", help="comma-separated: json, stream")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not set(modes) <= {"json", "stream"}:
        parser.error("--modes takes json and/or stream")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as scratch:
        for workers in (int(count) for count in args.workers.split(",")):
            for mode in modes:
                rows.append(bench(mode, workers, args, Path(scratch)))
                print(f"done: {mode} x{workers}", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
