"""The local folder sink: write-once, no temporaries left, no key outside its folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stream.errors import PermanentSinkError
from stream.sinks import Body, Put
from stream.sinks.local import LocalSink


def test_local_sink_writes_once_and_leaves_no_temporaries(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "out")
    assert sink.put("a/b.csv", Body.of(b"first")) is Put.WRITTEN
    assert sink.put("a/b.csv", Body.of(b"first")) is Put.UNCHANGED
    assert sink.put("a/b.csv", Body.of(b"second")) is Put.KEPT
    assert (tmp_path / "out" / "a" / "b.csv").read_bytes() == b"first"
    assert [p.name for p in (tmp_path / "out" / "a").iterdir()] == ["b.csv"]
    assert sink.location("a/b.csv") == (tmp_path / "out" / "a" / "b.csv").as_uri()


def test_local_sink_with_overwrite_replaces_files(tmp_path: Path) -> None:
    LocalSink(tmp_path).put("b.csv", Body.of(b"first"))
    assert LocalSink(tmp_path, overwrite=True).put("b.csv", Body.of(b"second")) is Put.WRITTEN
    assert (tmp_path / "b.csv").read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["b.csv"]


def test_local_sink_refuses_keys_that_escape_its_folder(tmp_path: Path) -> None:
    with pytest.raises(PermanentSinkError):
        LocalSink(tmp_path).put("../outside.csv", Body.of(b"x"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    before = os.umask(umask)
    try:
        LocalSink(tmp_path).put("a/b.csv", Body.of(b"rows"))
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "a" / "b.csv").stat().st_mode) == mode


def test_a_folder_that_cannot_be_created_is_a_problem_even_where_access_says_writable() -> None:
    inspection = LocalSink("/proc/cohort-sync-out").inspect()
    assert inspection.problems == ["cannot create /proc/cohort-sync-out: No such file or directory"]


def test_inspecting_a_folder_to_be_created_leaves_nothing_behind(tmp_path: Path) -> None:
    inspection = LocalSink(tmp_path / "a" / "b").inspect()
    assert inspection.facts == [f"folder {tmp_path / 'a' / 'b'} can be created (in {tmp_path})"]
    assert list(tmp_path.iterdir()) == []


def test_a_location_is_the_path_as_named_on_disk(tmp_path: Path) -> None:
    key = "7_c1_2026-01-05T01:00_entering.csv"
    assert LocalSink(tmp_path).location(key) == f"file://{tmp_path}/{key}"  # not T01%3A00
