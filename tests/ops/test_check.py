"""`cohort-sync check` without services: the plan, a folder destination, the exit codes.
(The broker and S3 cases run against Tansu and moto in tests/integration/test_check.py.)"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from stream.commands.cli import main
from stream.config import Settings, settings_from_mapping
from stream.ops.check import plan_lines, run_check
from stream.sinks import open_sink
from tests.scenario import JAN5, MIN, H


def settings(folder: Path, *syncs: Mapping[str, object]) -> Settings:
    return settings_from_mapping(
        {
            "project_id": 7,
            "destinations": [{"name": "disk", "url": folder.as_uri(), "naming": "no-colon"}],
            "syncs": list(syncs),
        }
    )


def test_the_plan_shows_each_rule_its_next_sync_time_and_an_example_key(tmp_path: Path) -> None:
    config = settings_from_mapping(
        {
            "project_id": 7,
            "destinations": [{"name": "disk", "url": tmp_path.as_uri(), "naming": "no-colon"}],
            "syncs": [
                {"cohort": "*", "destination": "disk", "cadence": "hourly"},
                {"cohort": "c1", "destination": "disk", "cadence": "15m", "routing_key": "crm"},
                {
                    "cohort": "c1",
                    "destination": "disk",
                    "cadence": "once",
                    "at": "2026-01-05T00:00Z",
                    "routing_key": "then",
                },
            ],
        }
    )
    sinks = {"disk": open_sink(config.destinations["disk"])}
    assert plan_lines(config, sinks, JAN5 + 20 * MIN) == [
        "syncs[0]: every cohort -> disk, hourly, next 2026-01-05T01:00Z: for example "
        f"file://{tmp_path}/7_{{cohort_id}}_2026-01-05T01-00_entering.csv",
        "syncs[1]: cohort c1 -> disk, 15m, next 2026-01-05T00:30Z: for example "
        f"file://{tmp_path}/7_c1_2026-01-05T00-30_entering_crm.csv",
        "syncs[2]: cohort c1 -> disk, once at 2026-01-05T00:00Z (past: a replay writes it): "
        f"for example file://{tmp_path}/7_c1_2026-01-05T00-00_entering_then.csv",
    ]


def test_a_folder_that_can_be_made_passes_and_one_that_cannot_is_a_problem(tmp_path: Path) -> None:
    hourly = {"cohort": "*", "destination": "disk", "cadence": "hourly"}
    out = io.StringIO()
    assert run_check(settings(tmp_path / "new", hourly), "c.toml", JAN5 + H, out) == 0
    text = out.getvalue()
    assert "broker       none configured: the worker starts an embedded one" in text
    assert f"folder {tmp_path / 'new'} can be created (in {tmp_path})" in text
    assert [line for line in text.splitlines() if line.startswith("result")] == [
        "result       everything is reachable"  # the verdict once, last
    ]
    assert text.splitlines()[-1].startswith("result")
    assert not (tmp_path / "new").exists()  # check writes nothing
    (tmp_path / "file").write_text("")
    out = io.StringIO()
    assert run_check(settings(tmp_path / "file", hourly), "c.toml", JAN5 + H, out) == 1
    problems = [line for line in out.getvalue().splitlines() if line.startswith("problem")]
    assert problems == [f"problem      destination disk: {tmp_path / 'file'} is not a folder"]
    assert out.getvalue().splitlines()[-1] == "result       1 problem: fix them, then check again"


def test_a_config_error_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[kafka]\nidle_catch_up = "soon"\n')
    assert main(["check", "--config", str(config)]) == 2
