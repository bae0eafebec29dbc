"""The stall watch: silent while the position moves, speaks once per patience when it does
not, and starts afresh when there is nothing to watch."""

from stream.ops.progress_watch import ProgressWatch


def test_a_moving_position_never_stalls() -> None:
    watch = ProgressWatch(patience=10)
    assert not any(watch.stalled(float(now), now) for now in range(0, 100, 5))


def test_a_still_position_stalls_after_patience_and_again_after_another() -> None:
    watch = ProgressWatch(patience=10)
    said = [now for now in range(0, 35) if watch.stalled(float(now), (7, 3))]
    assert said == [10, 20, 30]


def test_nothing_to_watch_starts_afresh() -> None:
    watch = ProgressWatch(patience=10)
    assert not watch.stalled(0.0, 1)
    assert not watch.stalled(9.0, None)
    assert not watch.stalled(15.0, 1)  # watched again from 15
    assert not watch.stalled(24.0, 1)
    assert watch.stalled(25.0, 1)
