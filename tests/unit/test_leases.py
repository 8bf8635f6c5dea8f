"""The lease logic as a cluster, under trio's virtual clock: workers' limits plugins lease from one
coordinator's buckets over a link with a delay, clients keep them overloaded for minutes of virtual time.

Checked: the cluster never admits more than one bucket would (capacity plus the refill of the time
passed), and under steady overload admits at least 95% of it.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from sim.limits_plugin import LeaseNeed, LimitsPlugin
from sim.pipeline import Context, PluginRequest, PluginResponse, Suspend
from sim.ratelimit import Buckets, Limit, LimitsConfig
from sim.rules_plugin import SIZE_BYTES

LINK_DELAY_S = 0.002  # each way


class Cluster:
    def __init__(self, config: LimitsConfig, workers: int) -> None:
        self.buckets = Buckets()
        self.workers = workers
        self.plugins = [
            LimitsPlugin(config, clock=trio.current_time, wall_clock=lambda: 0.0, give_back=self._give_back)
            for _ in range(workers)
        ]
        self.admitted: list[tuple[float, int]] = []  # (when, tokens used)
        self.refused = 0
        self.round_trips = 0

    def _give_back(self, returns: list[tuple[str, float]]) -> None:
        # Fire and forget, as over ZeroMQ: it lands a little later.
        self.buckets.give_back(returns, trio.current_time())

    async def request(self, worker: int, body: dict[str, object], used_tokens: int) -> None:
        plugin = self.plugins[worker]
        ctx = Context(request_id="r", worker_id=str(worker), provider="openai")
        ctx[SIZE_BYTES] = 40
        result = plugin.pre_hook(ctx, PluginRequest("openai", "/chat/completions", "gpt-4o", body, {}))
        while isinstance(result, Suspend):
            assert isinstance(result.need, LeaseNeed)
            self.round_trips += 1
            await trio.sleep(LINK_DELAY_S)
            answer = self.buckets.lease(result.need.asks, trio.current_time(), workers=self.workers)
            await trio.sleep(LINK_DELAY_S)
            result = result.resume(answer)
        if not isinstance(result, PluginRequest):
            self.refused += 1
            return
        self.admitted.append((trio.current_time(), used_tokens))
        await trio.sleep(0.01)  # the answer takes a while
        plugin.post_hook(ctx, PluginResponse(200, usage=(10, used_tokens - 10)), None)


async def overload(cluster: Cluster, *, clients: int, duration_s: float, body: dict[str, object], used: int) -> None:
    rand = random.Random(7)

    async def client(worker: int) -> None:
        while trio.current_time() < duration_s:
            await cluster.request(worker, body, used)
            await trio.sleep(rand.uniform(0.001, 0.05))

    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(client, index % cluster.workers)


@pytest.mark.parametrize("workers", [2, 4])
async def test_the_cluster_admits_what_one_rpm_bucket_would_and_at_least_95_percent_of_it(
    workers: int, autojump_clock: trio.testing.MockClock
) -> None:
    rpm, duration = 600, 60.0
    cluster = Cluster(LimitsConfig(Limit(rpm=rpm)), workers)
    await overload(cluster, clients=8 * workers, duration_s=duration, body={}, used=0)
    allowed = rpm + rpm / 60 * duration  # a full bucket, then its refill
    # At every moment, never more than the bucket allows by then.
    for count, (at, _) in enumerate(cluster.admitted, start=1):
        assert count <= rpm + rpm / 60 * at + 1e-9
    assert len(cluster.admitted) >= 0.95 * allowed
    assert cluster.refused > len(cluster.admitted)  # it was overloaded
    assert cluster.round_trips < cluster.refused  # refusals are mostly decided locally


async def test_the_cluster_admits_what_one_tpm_bucket_would(autojump_clock: trio.testing.MockClock) -> None:
    tpm, duration = 60_000, 60.0
    cluster = Cluster(LimitsConfig(Limit(tpm=tpm)), 3)
    # Each request reserves its prompt (10) plus max_tokens (400) and uses 250: the rest goes back.
    await overload(cluster, clients=24, duration_s=duration, body={"max_tokens": 400}, used=250)
    allowed = tpm + tpm / 60 * duration
    used = 0
    for at, tokens in cluster.admitted:
        used += tokens
        assert used <= tpm + tpm / 60 * at + 410  # plus the one reservation in flight
    assert used >= 0.95 * allowed - 410


async def test_leases_are_rare_when_the_limit_is_far_away(autojump_clock: trio.testing.MockClock) -> None:
    cluster = Cluster(LimitsConfig(Limit(rpm=1_000_000)), 2)
    await overload(cluster, clients=8, duration_s=10.0, body={}, used=0)
    assert cluster.refused == 0
    assert cluster.round_trips * 100 < len(cluster.admitted)
