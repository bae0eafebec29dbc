"""One exception tree: every error a user can cause is a CohortSyncError, printed as a line."""

from __future__ import annotations

import stream.errors as errors


def test_every_error_is_a_cohort_sync_error() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, errors.CohortSyncError) for cls in classes)


def test_a_config_error_is_one_line_naming_the_key() -> None:
    error = errors.ConfigError("syncs[0].cadence", "'weekly' is not a duration")
    assert str(error) == "config error: syncs[0].cadence: 'weekly' is not a duration"
    assert "\n" not in str(error) and error.key == "syncs[0].cadence"
