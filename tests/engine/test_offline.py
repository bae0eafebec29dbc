"""The offline run: the processor over a list of records, as the worker places them."""

from __future__ import annotations

import pytest

from stream.engine.offline import expected_outputs
from tests.engine.test_processor import config
from tests.scenario import C1, C2, expected_csvs


@pytest.mark.parametrize(
    ("partitions", "cohorts"),
    [
        (1, ("c1",)),
        (4, ("c1", "c2")),  # c2 on its own partition: its watermark is not c1's
    ],
)
def test_the_offline_run_gives_the_scenario_s_files_on_any_partition_count(
    partitions: int, cohorts: tuple[str, ...]
) -> None:
    lines = [*C1, *(C2 if "c2" in cohorts else []), b"not json"]
    outputs = expected_outputs(config(partitions=partitions), lines)
    files = {f.key: f.data.decode() for output in outputs for f in output.csv_files}
    assert files == expected_csvs(cohorts=cohorts)
