"""The benchmark still runs end to end (tiny sizes; no figure is asserted: speed is
measured by `make bench`, not by tests)."""

import io
import json

from benchmarks.bench import Sizes, run_bench
from tests.brokers import broker_kind

EXPECTED_KEYS = {
    "raw_events_per_s",
    "faust_floor_events_per_s",
    "ingest_events_per_s",
    "ingest_ratio",
    "state_overhead_ratio",
    "batch_changes_per_s",
    "flush_1m_seconds",
    "flush_ratio",
    "bytes_per_member",
    "churn_growth_ratio",
    "churn_growth_ratio_forever",
    "replay_events_per_s",
    "replay_events_ratio",
    "replay_changes_per_s",
    "replay_changes_ratio",
    "replay_events_wall_ratio",
    "replay_changes_wall_ratio",
    "recovery_seconds",
    "recovery_ratio",
    "first_sync_seconds",
    "first_sync_ratio",
    "max_loop_stall_s",
}


def test_bench_runs_at_tiny_sizes_and_ends_with_its_json_line() -> None:
    out = io.StringIO()
    tiny = Sizes(
        single_events=2_000,
        batch_messages=4,
        flush_members=5_000,
        memory_members=5_000,
        repeats=1,
        churn_members=2_000,
        restart_members=100_000,  # a message of 1,000 in each cohort
    )
    summary = run_bench(quick=True, out=out, sizes=tiny, broker_kind=broker_kind())
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last == summary and set(last) == EXPECTED_KEYS
    assert all(value > 0 for key, value in last.items() if key != "max_loop_stall_s")
    assert last["max_loop_stall_s"] >= 0
    assert "worker, batch form (1,000 users)" in out.getvalue()
    assert "restart with 100,000 members" in out.getvalue()
