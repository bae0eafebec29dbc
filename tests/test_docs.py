"""The docs keep up with the code: every config key the loader knows has its row in
docs/configuration.md, every metric `/metrics` serves its row in docs/operations.md, and the
README stays a product page."""

from __future__ import annotations

import ast
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


def defined_names() -> tuple[dict[str, set[str]], set[str]]:
    """Every class of `stream/` with the names its body defines, and every other name
    defined at a module's top level."""
    classes: dict[str, set[str]] = {}
    names: set[str] = set()
    for path in (ROOT / "stream").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                members = classes.setdefault(node.name, set())
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        members.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        members.add(item.target.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign | ast.Assign):
                targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                names.update(target.id for target in targets if isinstance(target, ast.Name))
    return classes, names


def test_every_name_in_the_record_life_section_of_the_architecture_exists_in_the_code() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("## One record's life") :]
    section = section[: section.index("\n## ", 1)]
    section = re.sub(r"```.*?```", "", section, flags=re.S)  # the picture
    classes, names = defined_names()
    config_keys = documented_rows(CONFIGURATION)
    missing = []
    for name in sorted(set(re.findall(r"`([^`]+)`", section))):
        if name.endswith(".py"):
            found = (ROOT / "stream" / name).is_file()
        elif "." in name:
            owner, attribute = name.split(".")
            found = attribute in classes.get(owner, set())
        else:
            found = (
                name in classes
                or name in names
                or any(key.endswith(f".{name}") for key in config_keys)
            )
        if not found:
            missing.append(name)
    assert missing == []
