"""How closely streams keep to a latency profile as concurrency rises (a benchmark, not a test).

    python tests/bench_latency.py [--workers 2] [--concurrency 1,16,64,128] [--tokens 50]

Starts ``understudy serve`` with one profile (TTFT 200 ms, 20 ms between tokens),
runs that many concurrent streaming chat requests for a few rounds (after one
round that opens the connections), measures TTFT
and inter-token latency as a client does (vLLM's definitions: TTFT to the first
chunk with a token, ITL between token chunks), and prints them with their ratio
to the configured values. The client shares the machine's cores with the server,
so the rows show where this machine stops keeping up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.bench_chat import start_understudy, stop

TTFT_MS = 200.0
ITL_MS = 20.0


async def one_stream(client: httpx.AsyncClient, tokens: int, ttfts: list[float], itls: list[float]) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": tokens, "ignore_eos": True}  # fmt: skip
    start = time.perf_counter()
    last = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if '"delta":{"content":"' in line and '"content":""' not in line:
                now = time.perf_counter()
                if last is None:
                    ttfts.append((now - start) * 1000)
                else:
                    itls.append((now - last) * 1000)
                last = now


async def measure(url: str, concurrency: int, tokens: int, rounds: int) -> tuple[list[float], list[float]]:
    ttfts: list[float] = []
    itls: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        # A first round opens the connections and is not counted: TTFT here is the server's, not TCP's.
        warm: list[float] = []
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(one_stream, client, 2, warm, warm)
        for _ in range(rounds):
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(one_stream, client, tokens, ttfts, itls)
    return ttfts, itls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", default="1,16,64,128")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    profile = {"latency_profiles": {"default": {"ttft": TTFT_MS, "itl": ITL_MS}}}
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "profile.json"
        config.write_text(json.dumps(profile))
        log_path = Path(scratch) / "serve.log"
        with log_path.open("wb") as log:
            process, url = start_understudy(args.workers, log, log_path, ["--config", str(config)])
            try:
                print(f"profile: TTFT {TTFT_MS:.0f} ms, ITL {ITL_MS:.0f} ms; {args.workers} workers, "
                      f"{args.tokens} tokens per stream, {args.rounds} rounds")  # fmt: skip
                columns = ("streams", "per worker", "TTFT mean ms", "TTFT p99 ms", "ratio", "ITL mean ms", "ITL p99 ms")
                print("| " + " | ".join((*columns, "ratio")) + " |")
                print("|---|---|---|---|---|---|---|---|")
                for concurrency in (int(level) for level in args.concurrency.split(",")):
                    ttfts, itls = trio.run(measure, url, concurrency, args.tokens, args.rounds)
                    ttft_mean, itl_mean = statistics.fmean(ttfts), statistics.fmean(itls)
                    ttft_p99 = statistics.quantiles(ttfts, n=100)[98] if len(ttfts) > 1 else ttfts[0]
                    itl_p99 = statistics.quantiles(itls, n=100)[98]
                    print(
                        f"| {concurrency} | {concurrency / args.workers:g} | {ttft_mean:.1f} | {ttft_p99:.1f} | "
                        f"{ttft_mean / TTFT_MS:.3f} | {itl_mean:.2f} | {itl_p99:.2f} | {itl_mean / ITL_MS:.3f} |"
                    )
            finally:
                stop(process)


if __name__ == "__main__":
    main()
