"""The docs keep up with the code: every config key the loader knows has its row in
docs/configuration.md, every metric `/metrics` serves its row in docs/operations.md, and the
README stays a product page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stream.config import settings_from_mapping
from stream.errors import ConfigError
from stream.metrics import Metrics
from stream.ops.prometheus import render_prometheus

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
MINIMAL: dict[str, Any] = {
    "destinations": [{"name": "d", "url": "file:///tmp/cohort-sync-docs"}],
    "syncs": [{"cohort": "*", "destination": "d", "cadence": "hourly"}],
}


def known_keys(config: dict[str, Any], where: str) -> set[str]:
    """The keys the loader accepts at `where`, as its unknown-key error lists them."""
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(config)
    assert error.value.key == f"{where}not-a-key"
    listed = re.search(r"known: ([^)]*)\)", str(error.value))
    assert listed is not None, str(error.value)
    return set(listed.group(1).split(", "))


def documented_rows(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))


def test_every_config_key_has_a_row_in_the_configuration_reference() -> None:
    sections = {
        "": {**MINIMAL, "not-a-key": 1},
        "kafka.": {**MINIMAL, "kafka": {"not-a-key": 1}},
        "destinations[].": {
            **MINIMAL,
            "destinations": [{**MINIMAL["destinations"][0], "not-a-key": 1}],
        },
        "syncs[].": {**MINIMAL, "syncs": [{**MINIMAL["syncs"][0], "not-a-key": 1}]},
    }
    wanted: set[str] = set()
    for prefix, config in sections.items():
        where = prefix.replace("[]", "[0]")
        keys = known_keys(config, where)
        wanted |= {
            f"{prefix}{key}" for key in keys if key not in {"kafka", "destinations", "syncs"}
        }
    wanted = {"faust.*" if key == "faust" else key for key in wanted}
    assert wanted - documented_rows(CONFIGURATION) == set()
    assert len(wanted) > 20  # the loader's lists were read, not an empty set


def test_every_metric_family_served_has_a_row_in_the_monitoring_table() -> None:
    metrics = Metrics()
    metrics.syncs["d"] = 1
    text = render_prometheus(metrics, {0: 1}, {0: 1.0}).decode()
    served = set(re.findall(r"^# TYPE (cohort_sync_\S+) ", text, flags=re.M))
    documented = {row.split("{")[0] for row in documented_rows(OPERATIONS)}
    assert served - documented == set()
    assert len(served) >= 15


def test_the_readme_is_a_product_page_of_at_most_2000_words() -> None:
    assert len(README.split()) <= 2000
