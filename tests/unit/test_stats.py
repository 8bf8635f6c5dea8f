from hypothesis import given
from hypothesis import strategies as st

from sim.stats import ClusterStats, RequestCounters, sum_counters


def counters(total: int, errors: int = 0, hits: dict[str, int] | None = None) -> dict[str, object]:
    return {
        "total_requests": total,
        "mocked_requests": total,
        "responses_generated": total - errors,
        "errors_generated": errors,
        "plugin_failures": 0,
        "faults_injected": 0,
        "rate_limited": 0,
        "served_without_coordinator": 0,
        "rule_hits": hits or {},
        "cost_usd": {},
    }


def test_request_counters_split_answers_from_errors() -> None:
    c = RequestCounters()
    c.count_response(status=200, mocked=True)
    c.count_response(status=429, mocked=True, rule="limit")
    snapshot = c.snapshot()
    assert snapshot.pop("metrics") == {}  # recorded by the app, not by count_response
    assert snapshot == counters(2, errors=1, hits={"limit": 1})


def test_cumulative_reports_sum_over_workers() -> None:
    stats = ClusterStats(started_s=0)
    for worker, total in (("w0", 3), ("w1", 4)):
        stats.seen(worker, "a", now_s=1, pid=10)
        stats.report(worker, "a", 1, counters(total, hits={"r": total}))
    snapshot = stats.snapshot(now_s=2)
    assert snapshot["total_requests"] == 7
    assert snapshot["rule_hits"] == {"r": 7}
    assert [w["requests"] for w in snapshot["workers"]] == [3, 4]


def test_repeated_or_older_reports_change_nothing() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    assert stats.report("w0", "a", 2, counters(5))
    assert not stats.report("w0", "a", 2, counters(5))
    assert not stats.report("w0", "a", 1, counters(3))
    assert stats.snapshot(now_s=0)["total_requests"] == 5


def test_restarted_worker_adds_to_what_it_reported_before() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "first", now_s=0, pid=1)
    stats.report("w0", "first", 9, counters(10))
    assert stats.seen("w0", "second", now_s=5, pid=2)
    stats.report("w0", "second", 1, counters(3))
    # A late heartbeat of the dead incarnation does not take the worker back.
    assert not stats.seen("w0", "first", now_s=6, pid=1)
    snapshot = stats.snapshot(now_s=6)
    assert snapshot["total_requests"] == 13
    (worker,) = snapshot["workers"]
    assert (worker["pid"], worker["incarnation"], worker["restarts"], worker["requests"]) == (2, "second", 1, 13)


def test_silent_worker_is_marked_dead_then_alive_again_when_heard() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    assert stats.sweep(now_s=4.9, timeout_s=5) == []
    assert stats.sweep(now_s=5.1, timeout_s=5) == ["w0"]
    assert stats.snapshot(now_s=6)["workers"][0]["alive"] is False
    stats.seen("w0", "a", now_s=7)
    assert stats.snapshot(now_s=7)["workers_alive"] == 1


def test_goodbye_marks_stopped_and_keeps_counts() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    stats.report("w0", "a", 1, counters(2))
    stats.goodbye("w0", "a")
    stats.seen("w0", "a", now_s=1)
    snapshot = stats.snapshot(now_s=1)
    assert snapshot["workers"][0]["alive"] is False
    assert snapshot["total_requests"] == 2


def test_garbage_counter_values_are_ignored() -> None:
    assert (
        sum_counters([{"total_requests": "many", "rule_hits": {"r": True}}, {"total_requests": 2}])["total_requests"]
        == 2
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["w0", "w1", "w2"]), st.sampled_from(["a", "b"]), st.integers(0, 50)), max_size=60
    )
)
def test_any_order_of_reports_sums_the_latest_of_each_incarnation(reports: list[tuple[str, str, int]]) -> None:
    stats = ClusterStats(started_s=0)
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for seq, (worker, incarnation, total) in enumerate(reports):
        # Reports arrive shuffled: odd positions are delayed ones with older seq numbers.
        seq_number = seq if seq % 2 == 0 else seq - 2
        stats.report(worker, incarnation, seq_number, counters(total))
        held = latest.get((worker, incarnation))
        if held is None or seq_number > held[0]:
            latest[(worker, incarnation)] = (seq_number, total)
    assert stats.snapshot(now_s=0)["total_requests"] == sum(total for _, total in latest.values())


def test_reset_counts_from_then_on_and_keeps_late_reports() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    stats.report("w0", "a", 1, {"total_requests": 5, "errors_generated": 1, "rule_hits": {"r": 2}})
    stats.reset()
    assert stats.snapshot(now_s=1)["total_requests"] == 0
    assert stats.snapshot(now_s=1)["rule_hits"] == {}
    stats.report("w0", "a", 2, {"total_requests": 8, "errors_generated": 1, "rule_hits": {"r": 3, "q": 1}})
    stats.seen("w1", "b", now_s=1)
    stats.report("w1", "b", 1, {"total_requests": 4})
    snapshot = stats.snapshot(now_s=2)
    assert snapshot["total_requests"] == 3 + 4
    assert snapshot["errors_generated"] == 0
    assert snapshot["rule_hits"] == {"r": 1, "q": 1}
    assert {w["id"]: w["requests"] for w in snapshot["workers"]} == {"w0": 3, "w1": 4}


def test_a_reset_takes_each_workers_epoch_report_as_its_exact_baseline() -> None:
    stats = ClusterStats(started_s=0)
    for worker in ("w0", "w1"):
        stats.seen(worker, "a", now_s=0)
        stats.report(worker, "a", 1, {"total_requests": 2})
    epoch = stats.reset()
    assert not stats.reset_settled()
    # w0 had answered 3 more before it heard of the reset; its tagged report says so.
    stats.report("w0", "a", 2, {"total_requests": 5}, reset_epoch=epoch)
    assert not stats.reset_settled()
    stats.report("w1", "a", 2, {"total_requests": 2}, reset_epoch=epoch)
    assert stats.reset_settled()
    assert stats.snapshot(now_s=1)["total_requests"] == 0
    # Later reports carry the same tag; only the first one was the baseline.
    stats.report("w0", "a", 3, {"total_requests": 6}, reset_epoch=epoch)
    stats.report("w1", "a", 3, {"total_requests": 4}, reset_epoch=epoch)
    assert stats.snapshot(now_s=2)["total_requests"] == 1 + 2


def test_a_report_of_an_older_epoch_is_no_baseline_and_dead_workers_are_not_waited_for() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    stats.seen("w1", "b", now_s=0)
    stats.report("w0", "a", 1, {"total_requests": 1})
    first = stats.reset()
    second = stats.reset()
    stats.report("w0", "a", 2, {"total_requests": 3}, reset_epoch=first)  # sent before the second reset
    assert stats.snapshot(now_s=1)["total_requests"] == 2  # against the provisional baseline
    stats.sweep(now_s=10, timeout_s=1)  # both silent: dead
    assert stats.reset_settled()
    stats.seen("w0", "a", now_s=11)
    stats.report("w0", "a", 3, {"total_requests": 3}, reset_epoch=second)
    assert stats.snapshot(now_s=12)["total_requests"] == 0


def test_cost_per_model_is_summed_and_reset_like_the_counters() -> None:
    stats = ClusterStats(started_s=0)
    stats.seen("w0", "a", now_s=0)
    stats.seen("w1", "b", now_s=0)
    stats.report("w0", "a", 1, {"total_requests": 1, "cost_usd": {"gpt-4o": 0.0075}})
    stats.report("w1", "b", 1, {"total_requests": 2, "cost_usd": {"gpt-4o": 0.0025, "claude-haiku-4-5": 0.001}})
    assert stats.snapshot(now_s=1)["cost_usd"] == {"gpt-4o": 0.01, "claude-haiku-4-5": 0.001}
    stats.reset()
    stats.report("w0", "a", 2, {"total_requests": 2, "cost_usd": {"gpt-4o": 0.01}})
    assert stats.snapshot(now_s=2)["cost_usd"] == {"gpt-4o": 0.0025}
