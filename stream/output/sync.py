"""One sync: its three CSV files and its manifest, built from a cohort diff, then written.

`build_sync` is pure: the same state gives the same keys and bytes. A sync is put in two
rounds (`SyncOutput.rounds`): the CSVs, then the manifest once every CSV is stored, so a
reader that waits for the manifest never sees a partial sync. `write_sync` puts them one
after another and blocks; the worker's writer puts a round's files at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.config import Destination, SyncRule
from stream.domain.membership import CohortDiff, PropertyKey, Snapshot
from stream.domain.naming import DIFF_TYPES, object_key
from stream.domain.windows import format_time
from stream.formats.columns import ColumnDiff, column_lines
from stream.formats.csvfile import Rows, csv_lines, format_cell, guard_formula
from stream.formats.encoding import encoder
from stream.sinks import Body, Put, Sink

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "SyncFile",
    "SyncOutput",
    "SyncedRows",
    "SyncSpec",
    "InputPosition",
    "build_sync",
    "build_next_sync",
    "build_sync_from_columns",
    "write_sync",
    "columns_for",
]


@dataclass(frozen=True, slots=True)
class SyncFile:
    key: str
    body: Body

    @property
    def data(self) -> bytes:
        """The whole bytes (small files, tests: the worker only ever reads `body`)."""
        return self.body.read()


@dataclass(frozen=True, slots=True)
class InputPosition:
    """Every input record of `topic`/`partition` below `end_offset` was applied."""

    topic: str
    partition: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class SyncOutput:
    destination: str
    cohort_id: str
    sync_time: int
    counts: dict[str, int]
    csv_files: tuple[SyncFile, ...]
    manifest: SyncFile

    @property
    def size(self) -> int:
        """The bytes of its files, manifest included."""
        return sum(file.body.size for file in (*self.csv_files, self.manifest))

    @property
    def rounds(self) -> tuple[tuple[SyncFile, ...], tuple[SyncFile, ...]]:
        """The files in the order they are put: the CSVs (in any order, or at once), then
        the manifest, only once every CSV is stored (a sync is complete once it exists)."""
        return self.csv_files, (self.manifest,)


def columns_for(
    properties: Sequence[str], rows: Sequence[tuple[int, Snapshot]]
) -> list[tuple[str, PropertyKey]]:
    """Property columns: one per property, or in portfolio data one per property and
    source app (`{property}_{app_id}`, apps ascending, values without an app first)."""
    return _columns_of(properties, (view.properties for _, view in rows))


def _columns_of(
    properties: Sequence[str], property_sets: Iterable[Iterable[PropertyKey]]
) -> list[tuple[str, PropertyKey]]:
    wanted = set(properties)
    apps = {app for keys in property_sets for name, app in keys if name in wanted}
    if not apps - {None}:
        return [(name, (name, None)) for name in properties]
    ordered = sorted(apps, key=lambda app: (app is not None, app or 0))
    return [
        (name if app is None else f"{name}_{app}", (name, app))
        for name in properties
        for app in ordered
    ]


@dataclass(frozen=True, slots=True)
class SyncedRows:
    """A built sync's existing file, kept so that the rule's next sync of the cohort
    formats only the rows of the members that changed (`build_next_sync`)."""

    sync_time: int
    columns: tuple[tuple[str, PropertyKey], ...]
    rows: Rows


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSpec:
    """Which sync: of which cohort and time, for which rule and destination, and the input
    it covers (for the manifest)."""

    project_id: int
    destination: Destination
    rule: SyncRule
    cohort_id: str
    sync_time: int
    position: InputPosition


def build_sync(
    spec: SyncSpec, previous: int | None, diff: CohortDiff
) -> tuple[SyncOutput, SyncedRows]:
    """The sync's files from the diff of every member of the cohort."""
    destination = spec.destination
    columns = columns_for(spec.rule.properties(destination), list(diff.all_rows()))
    guard = destination.csv_formula_guard
    existing = _rows(diff.existing, columns, guard)
    entering = _entering(diff.entering, existing, columns, guard)
    output = _output(
        spec, previous, entering, _lines(diff.exiting, columns, guard), existing, columns
    )
    return output, SyncedRows(spec.sync_time, tuple(columns), existing)


def build_sync_from_columns(
    spec: SyncSpec, previous: int | None, diff: ColumnDiff
) -> tuple[SyncOutput, SyncedRows]:
    """`build_sync`'s files and rows, from the diff as columns (`formats/columns.py`)."""
    destination = spec.destination
    used = [*diff.existing.used_sets(), *diff.exiting.used_sets()]
    columns = _columns_of(spec.rule.properties(destination), used)
    guard = destination.csv_formula_guard
    existing = Rows.of(diff.existing.ids, column_lines(diff.existing, columns, guard))
    entering = (  # entering is a part of existing: as many rows, the same rows
        existing.lines
        if len(diff.entering) == len(existing)
        else column_lines(diff.entering, columns, guard)
    )
    exiting = column_lines(diff.exiting, columns, guard)
    output = _output(spec, previous, entering, exiting, existing, columns)
    return output, SyncedRows(spec.sync_time, tuple(columns), existing)


def build_next_sync(
    spec: SyncSpec, last: SyncedRows, changed: Sequence[int], diff: CohortDiff
) -> tuple[SyncOutput, SyncedRows] | None:
    """The sync after `last`'s (the same rule), the same bytes as `build_sync` gives, from
    `diff` of only the members in `changed`: every other member is as it was at `last`.
    None in portfolio data (columns per app, which any member may change): build it whole."""
    destination = spec.destination
    columns = columns_for(spec.rule.properties(destination), list(diff.all_rows()))
    if any(app is not None for _, (_, app) in (*columns, *last.columns)):
        return None
    guard = destination.csv_formula_guard
    existing = last.rows.replaced(changed, _rows(diff.existing, columns, guard))
    entering = _lines(diff.entering, columns, guard)
    exiting = _lines(diff.exiting, columns, guard)
    output = _output(spec, last.sync_time, entering, exiting, existing, columns)
    return output, SyncedRows(spec.sync_time, tuple(columns), existing)


def _output(
    spec: SyncSpec,
    previous: int | None,
    entering: pa.StringArray,
    exiting: pa.StringArray,
    existing: Rows,
    columns: Sequence[tuple[str, PropertyKey]],
) -> SyncOutput:
    destination = spec.destination
    header = ["amplitudeID", "userID", *(name for name, _ in columns)]

    def key(kind: str) -> str:
        return object_key(
            path=destination.path if destination.scheme == "s3" else "",
            project_id=spec.project_id,
            cohort_id=spec.cohort_id,
            sync_time=spec.sync_time,
            kind=kind,
            naming=destination.naming,
            routing_key=spec.rule.routing_key,
            file_format=destination.format,
        )

    lines = {"entering": entering, "exiting": exiting, "existing": existing.lines}
    bodies: dict[int, Body] = {}  # a first sync's entering and existing: one body
    files = tuple(
        SyncFile(
            key(kind),
            bodies.setdefault(
                id(lines[kind]), Body(encoder(header, lines[kind], destination.format))
            ),
        )
        for kind in DIFF_TYPES
    )
    counts = {kind: len(lines[kind]) for kind in DIFF_TYPES}
    return SyncOutput(
        destination=destination.name,
        cohort_id=spec.cohort_id,
        sync_time=spec.sync_time,
        counts=counts,
        csv_files=files,
        manifest=SyncFile(key("manifest"), Body.of(_manifest(spec, previous, files, counts))),
    )


def write_sync(sink: Sink, output: SyncOutput) -> dict[str, Put]:
    """Put the sync's files one after another, round by round (`SyncOutput.rounds`).
    Returns what each put did, by key: written, unchanged or kept (see `Sink`)."""
    return {file.key: sink.put(file.key, file.body) for files in output.rounds for file in files}


def _rows(
    rows: Sequence[tuple[int, Snapshot]],
    columns: Sequence[tuple[str, PropertyKey]],
    guard: bool,
) -> Rows:
    return Rows.of([amplitude_id for amplitude_id, _ in rows], _lines(rows, columns, guard))


def _lines(
    rows: Sequence[tuple[int, Snapshot]],
    columns: Sequence[tuple[str, PropertyKey]],
    guard: bool,
) -> pa.StringArray:
    return csv_lines(_cells(rows, columns, guard))


def _entering(
    rows: Sequence[tuple[int, Snapshot]],
    existing: Rows,
    columns: Sequence[tuple[str, PropertyKey]],
    guard: bool,
) -> pa.StringArray:
    """The entering file's lines: entering is a part of existing, so when it has as many
    rows (a first sync) it is the same lines."""
    return existing.lines if len(rows) == len(existing) else _lines(rows, columns, guard)


def _cells(
    rows: Sequence[tuple[int, Snapshot]],
    columns: Sequence[tuple[str, PropertyKey]],
    guard: bool = False,
) -> list[Sequence[str | int | None]]:
    """Column-major cells; amplitude ids stay ints (Arrow turns them into text)."""
    text: list[list[str | None]] = [[view.user_id for _, view in rows]]
    for _, prop in columns:
        text.append(
            [  # format_cell only for values that are not already text (or missing)
                value
                if (value := view.properties.get(prop, _MISSING)[0]) is None or type(value) is str
                else format_cell(value)
                for _, view in rows
            ]
        )
    if guard:  # amplitude ids are digits: only the other columns can hold a formula
        text = [[guard_formula(cell) for cell in column] for column in text]
    return [[amplitude_id for amplitude_id, _ in rows], *text]


_MISSING: tuple[None] = (None,)


def _manifest(
    spec: SyncSpec, previous: int | None, files: Sequence[SyncFile], counts: dict[str, int]
) -> bytes:
    rule, sync_time, position = spec.rule, spec.sync_time, spec.position
    window_start = rule.schedule.previous(sync_time)  # None: a one-time sync diffs from nothing
    document: dict[str, Any] = {
        "format": "cohort-sync/manifest/1",
        **({} if spec.destination.format == "csv" else {"file_format": spec.destination.format}),
        "project_id": spec.project_id,
        "cohort_id": spec.cohort_id,
        "destination": spec.destination.name,
        "routing_key": rule.routing_key,
        "cadence": rule.cadence,
        "sync_time": format_time(sync_time),
        "window_start": None if window_start is None else format_time(window_start),
        "window_end": format_time(sync_time),
        "first_sync": previous is None,
        "files": {
            kind: {
                "key": file.key,
                "rows": counts[kind],
                "bytes": file.body.size,
                "sha256": file.body.sha256,
            }
            for kind, file in zip(DIFF_TYPES, files, strict=True)
        },
        "input": {
            "topic": position.topic,
            "partition": position.partition,
            "end_offset": position.end_offset,
        },
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
