"""The benchmark's table: each figure beside what it is compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from benchmarks.benchwork import CHURN_ROUNDS

if TYPE_CHECKING:
    from benchmarks.bench import Sizes, _Bench

__all__ = ["write_table"]


def write_table(
    summary: dict[str, float], bare_seconds: float, bench: _Bench, sizes: Sizes, out: TextIO
) -> None:
    rows = [
        ("raw aiokafka getmany + json.loads", f"{summary['raw_events_per_s']:,} records/s", ""),
        ("Faust agent, no state", f"{summary['faust_floor_events_per_s']:,} events/s", ""),
        (
            "worker, single events",
            f"{summary['ingest_events_per_s']:,} events/s",
            f"{summary['ingest_ratio']:.2f} of raw, {summary['state_overhead_ratio']:.2f} of floor",
        ),
        ("worker, batch form (1,000 users)", f"{summary['batch_changes_per_s']:,} changes/s", ""),
        (
            f"flush, {sizes.flush_members:,} members",
            f"{summary['flush_1m_seconds']:.2f} s",
            f"{summary['flush_ratio']:.2f}x bare pyarrow write_csv + put ({bare_seconds:.2f} s)",
        ),
        (
            "  its first sync (every member enters)",
            f"{summary['first_sync_seconds']:.2f} s",
            f"{summary['first_sync_ratio']:.1f}x the bare write; loop blocked up to "
            f"{bench.first_sync_stall:.2f} s",
        ),
        (
            "replay, single events",
            f"{summary['replay_events_per_s']:,} events/s",
            f"{summary['replay_events_ratio']:.2f} of raw; the whole command "
            f"{summary['replay_events_wall_ratio']:.2f}",
        ),
        (
            "replay, batch form",
            f"{summary['replay_changes_per_s']:,} changes/s",
            f"{summary['replay_changes_ratio']:.2f} of the raw read (users/s); the whole "
            f"command {summary['replay_changes_wall_ratio']:.2f}",
        ),
        (
            f"restart with {sizes.restart_members:,} members",
            f"{summary['recovery_seconds']:.1f} s",
            f"{summary['recovery_ratio']:.2f} of their ingest; loop blocked up to "
            f"{bench.restart_stall:.2f} s",
        ),
        (
            "memory",
            f"{summary['bytes_per_member']:,} bytes/member",
            f"over {sizes.memory_members:,} members",
        ),
        (
            f"churn, {CHURN_ROUNDS} days, retain 1d",
            f"{summary['churn_growth_ratio']:.2f}x RSS",
            f"last day over the 2nd; {summary['churn_growth_ratio_forever']:.2f}x kept forever",
        ),
    ]
    out.write(f"\n{'measure':<36} {'result':>22}  compared\n")
    for name, value, note in rows:
        out.write(f"{name:<36} {value:>22}  {note}\n")
