"""Request counters in a worker, and their cluster-wide sum in the coordinator.

Theory of operation: a worker counts into :class:`RequestCounters` and reports
the cumulative values of its incarnation (never a delta, never reset on send).
:class:`ClusterStats` keeps, per (worker id, incarnation), the report with the
highest sequence number, and sums them all. A lost report is made good by the
next one, a repeated or reordered one is ignored, and a restarted worker (same
id, new incarnation) adds to what its earlier incarnations reported instead of
replacing it. Liveness is judged from the time of the last message, with the
current time always passed in.

A reset (``POST /admin/stats/reset``) never zeroes a worker's counters: it opens
a new reset epoch, with a baseline per incarnation subtracted from what it
reports. The counters held at that moment are the provisional baseline; each
worker, told of the epoch, reports at once with the epoch's tag, and that
report's counters become its exact baseline. So what a worker answered before
it heard of the reset never shows after it, even when its periodic report was
still on its way, and nothing is lost or counted twice. :meth:`reset_settled`
says when every live worker has given its exact baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.metrics import MetricSeries

COUNTER_NAMES = (
    "total_requests",
    "mocked_requests",
    "responses_generated",
    "errors_generated",
    "plugin_failures",
    "faults_injected",
    "rate_limited",
    "served_without_coordinator",
)
# Per-key counters: rule hits (int) and cost in USD per model (float).
MAPPING_NAMES = ("rule_hits", "cost_usd")


@dataclass(slots=True)
class RequestCounters:
    """What one worker incarnation has done since it started."""

    total_requests: int = 0
    mocked_requests: int = 0
    responses_generated: int = 0
    errors_generated: int = 0
    plugin_failures: int = 0
    faults_injected: int = 0
    rate_limited: int = 0
    served_without_coordinator: int = 0  # answered while the coordinator was unreachable (fail-open)
    rule_hits: dict[str, int] = field(default_factory=dict)
    cost_usd: dict[str, float] = field(default_factory=dict)  # per model
    # The /metrics series: reported with the counters, summed over the cluster, never reset.
    metrics: MetricSeries = field(default_factory=MetricSeries)

    def count_response(self, *, status: int, mocked: bool, rule: str | None = None) -> None:
        self.total_requests += 1
        if mocked:
            self.mocked_requests += 1
        if status < 400:
            self.responses_generated += 1
        else:
            self.errors_generated += 1
        if rule is not None:
            self.rule_hits[rule] = self.rule_hits.get(rule, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total_requests": self.total_requests,
            "mocked_requests": self.mocked_requests,
            "responses_generated": self.responses_generated,
            "errors_generated": self.errors_generated,
            "plugin_failures": self.plugin_failures,
            "faults_injected": self.faults_injected,
            "rate_limited": self.rate_limited,
            "served_without_coordinator": self.served_without_coordinator,
            "rule_hits": dict(self.rule_hits),
            "cost_usd": dict(self.cost_usd),
            "metrics": self.metrics.snapshot(),
        }


def subtract_counters(counters: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """``counters - baseline``, counter by counter and rule by rule (both cumulative)."""
    out: dict[str, Any] = {}
    for name in COUNTER_NAMES:
        value, base = counters.get(name, 0), baseline.get(name, 0)
        if isinstance(value, int) and isinstance(base, int):
            out[name] = value - base
    for name in MAPPING_NAMES:
        values, base_values = counters.get(name), baseline.get(name)
        if not isinstance(values, Mapping):
            continue
        base_values = base_values if isinstance(base_values, Mapping) else {}
        differences = {key: _number(value) - _number(base_values.get(key, 0)) for key, value in values.items()}
        out[name] = {key: difference for key, difference in differences.items() if difference}
    return out


def _number(value: object) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def sum_counters(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add counter snapshots; unknown keys and non-integer values are ignored."""
    total: dict[str, Any] = {name: 0 for name in COUNTER_NAMES}
    mappings: dict[str, dict[str, float]] = {name: {} for name in MAPPING_NAMES}
    for snapshot in snapshots:
        for name in COUNTER_NAMES:
            value = snapshot.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                total[name] += value
        for name, summed in mappings.items():
            values = snapshot.get(name)
            if isinstance(values, Mapping):
                for key, value in values.items():
                    summed[str(key)] = summed.get(str(key), 0) + _number(value)
    total.update(mappings)
    if total["cost_usd"]:
        total["cost_usd"] = {model: round(cost, 8) for model, cost in total["cost_usd"].items()}
    return total


@dataclass(slots=True)
class WorkerRecord:
    worker_id: str
    incarnation: str
    pid: int
    host: str
    last_seen_s: float
    alive: bool = True
    stopped: bool = False
    incarnations: int = 1


@dataclass(slots=True)
class _Report:
    seq: int
    counters: Mapping[str, Any]


class ClusterStats:
    """The coordinator's view of every worker and the sum of their counters."""

    def __init__(self, *, started_s: float) -> None:
        self.started_s = started_s
        self._workers: dict[str, WorkerRecord] = {}
        self._reports: dict[tuple[str, str], _Report] = {}
        self._baselines: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._exact: set[tuple[str, str]] = set()  # incarnations whose baseline came tagged with the epoch
        self.reset_epoch = 0
        self.bad_frames = 0

    def reset(self) -> int:
        """Count from now on; returns the new epoch, which the workers are to be told of.

        What is held becomes each incarnation's provisional baseline, until its
        report tagged with the epoch arrives.
        """
        self.reset_epoch += 1
        self._baselines = {key: report.counters for key, report in self._reports.items()}
        self._exact = set()
        return self.reset_epoch

    def reset_settled(self) -> bool:
        """Whether every live worker's current incarnation has reported its exact baseline."""
        return all(
            (record.worker_id, record.incarnation) in self._exact for record in self._workers.values() if record.alive
        )

    def _since_reset(self) -> dict[tuple[str, str], Mapping[str, Any]]:
        return {
            key: subtract_counters(report.counters, self._baselines[key]) if key in self._baselines else report.counters
            for key, report in self._reports.items()
        }

    def seen(self, worker_id: str, incarnation: str, *, now_s: float, pid: int = 0, host: str = "") -> bool:
        """Note a message from ``worker_id``; True if this is an incarnation not seen before."""
        record = self._workers.get(worker_id)
        if record is None:
            self._workers[worker_id] = WorkerRecord(worker_id, incarnation, pid, host, now_s)
            return True
        if record.incarnation != incarnation:
            if (worker_id, incarnation) in self._reports:
                return False  # a late message from an earlier incarnation
            record.incarnation = incarnation
            record.incarnations += 1
            record.pid = pid or record.pid
            record.host = host or record.host
            record.stopped = False
            record.alive = True
            record.last_seen_s = now_s
            return True
        if pid:
            record.pid = pid
        if host:
            record.host = host
        record.last_seen_s = now_s
        record.alive = not record.stopped
        return False

    def report(
        self, worker_id: str, incarnation: str, seq: int, counters: Mapping[str, Any], *, reset_epoch: int = 0
    ) -> bool:
        """Keep a cumulative report unless a newer one of that incarnation is held.

        The first report tagged with the current reset epoch is that
        incarnation's exact baseline.
        """
        key = (worker_id, incarnation)
        held = self._reports.get(key)
        if held is not None and held.seq >= seq:
            return False
        self._reports[key] = _Report(seq, counters)
        if reset_epoch and reset_epoch == self.reset_epoch and key not in self._exact:
            self._baselines[key] = counters
            self._exact.add(key)
        return True

    def goodbye(self, worker_id: str, incarnation: str) -> None:
        record = self._workers.get(worker_id)
        if record is not None and record.incarnation == incarnation:
            record.alive = False
            record.stopped = True

    def sweep(self, *, now_s: float, timeout_s: float) -> list[str]:
        """Mark workers silent for longer than ``timeout_s`` dead; return those newly so."""
        newly_dead = []
        for record in self._workers.values():
            if record.alive and now_s - record.last_seen_s > timeout_s:
                record.alive = False
                newly_dead.append(record.worker_id)
        return newly_dead

    def metrics(self) -> dict[str, float]:
        """The /metrics series of every incarnation ever reported, summed key by key (resets do not apply)."""
        total: dict[str, float] = {}
        for report in self._reports.values():
            series = report.counters.get("metrics")
            if isinstance(series, Mapping):
                for key, value in series.items():
                    total[str(key)] = total.get(str(key), 0.0) + _number(value)
        return total

    def alive_workers(self) -> list[str]:
        return [record.worker_id for record in self._workers.values() if record.alive]

    def snapshot(self, *, now_s: float) -> dict[str, Any]:
        """The aggregate that ``/admin/stats`` shows."""
        counted = self._since_reset()
        totals = sum_counters(counted.values())
        per_worker: dict[str, int] = {}
        for (worker_id, _), counters in counted.items():
            requests = counters.get("total_requests", 0)
            if isinstance(requests, int):
                per_worker[worker_id] = per_worker.get(worker_id, 0) + requests
        workers = [
            {
                "id": record.worker_id,
                "pid": record.pid,
                "host": record.host,
                "incarnation": record.incarnation,
                "alive": record.alive,
                "requests": per_worker.get(record.worker_id, 0),
                "restarts": record.incarnations - 1,
                "last_seen_s_ago": round(max(0.0, now_s - record.last_seen_s), 3),
            }
            for record in sorted(self._workers.values(), key=lambda r: r.worker_id)
        ]
        return {
            **totals,
            "workers": workers,
            "workers_alive": sum(1 for record in self._workers.values() if record.alive),
            "uptime_s": round(max(0.0, now_s - self.started_s), 3),
            "bad_frames": self.bad_frames,
        }
