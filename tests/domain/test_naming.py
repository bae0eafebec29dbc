"""Object keys of a sync."""

from stream.domain.naming import object_key

T = 1_767_574_800_000  # 2026-01-05T01:00Z


def test_amplitude_naming_with_path_and_routing_key() -> None:
    key = object_key(
        path="cohorts/daily",
        project_id=4242,
        cohort_id="c1",
        sync_time=T,
        kind="entering",
        naming="amplitude",
        routing_key="crm",
    )
    assert key == "cohorts/daily/4242_c1_2026-01-05T01:00_entering_crm.csv"


def test_no_colon_naming_without_path_or_suffix() -> None:
    key = object_key(
        path="",
        project_id=1,
        cohort_id="c1",
        sync_time=T,
        kind="existing",
        naming="no-colon",
        routing_key=None,
    )
    assert key == "1_c1_2026-01-05T01-00_existing.csv"


def test_manifest_key() -> None:
    key = object_key(
        path="p",
        project_id=1,
        cohort_id="c",
        sync_time=T,
        kind="manifest",
        naming="amplitude",
        routing_key="r",
    )
    assert key == "p/1_c_2026-01-05T01:00_manifest_r.json"
