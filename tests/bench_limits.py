"""The cost of cluster-wide rate limits: throughput with a limit configured but never reached,
beside the same server without limits, measured in the same run.

Run from the repository root (needs ``wrk`` on PATH)::

    python tests/bench_limits.py [--duration 4] [--rounds 3] [--workers 2] [--connections 16]

Both servers are ``understudy serve`` with the same workers; the limited one has
``--limit-rpm`` and ``--limit-tpm`` far above what wrk can reach, so every request
draws on the leases (and the coordinator refills them) without ever being
refused. The two are loaded by wrk in alternating runs and each side's median
is reported, with the ratio (target: at least 0.90). A standalone script, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bench_chat import Load, median_load, request_body, run_wrk, start_understudy, stop

TARGET_RATIO = 0.90
LIMITS = ("--limit-rpm", "100000000", "--limit-tpm", "100000000000")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    loads: dict[str, list[Load]] = {"unlimited": [], "limited": []}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as scratch_dir:
        scratch = Path(scratch_dir)
        script = scratch / "chat.lua"
        body = request_body("json", args.max_tokens).decode()
        script.write_text(
            f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'
        )
        processes = []
        try:
            urls = {}
            for name, extra in (("unlimited", ()), ("limited", LIMITS)):
                log_path = scratch / f"{name}.log"
                process, urls[name] = start_understudy(args.workers, log_path.open("wb"), log_path, extra)
                processes.append(process)
            for url in urls.values():
                run_wrk(url, script, 1.0, args.connections)  # warm-up
            for index in range(args.rounds):
                order = ("unlimited", "limited") if index % 2 == 0 else ("limited", "unlimited")
                for name in order:
                    loads[name].append(run_wrk(urls[name], script, args.duration, args.connections))
        finally:
            for process in processes:
                stop(process)
    unlimited, limited = median_load(loads["unlimited"]), median_load(loads["limited"])
    ratio = limited.requests_per_s / unlimited.requests_per_s
    print(f"{'server':10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, load in (("unlimited", unlimited), ("limited", limited)):
        print(f"{name:10s} {load.requests_per_s:9.0f} {load.p50_ms:8.2f} {load.p99_ms:8.2f}")
    verdict = "yes" if ratio >= TARGET_RATIO else "NO"
    print(f"ratio limited/unlimited: {ratio:.3f} (target >= {TARGET_RATIO}: {verdict}); {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
