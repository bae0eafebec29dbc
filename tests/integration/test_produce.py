"""`cohort-sync produce` against the broker: what it says is what the topic holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stream.config import settings_from_mapping
from stream.kafka.scan import scan_topic
from tests.scenario import C1

from .support import cli, toml_of


def test_produce_drops_a_bom_refuses_what_cannot_be_an_event_and_says_so(
    tmp_path: Path, s3_config: Callable[..., Path]
) -> None:
    config = s3_config()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + C1[0] + b"\nnot json\n" + C1[1] + b"\n")
    result = cli("produce", config, str(events))
    assert result.returncode == 1
    kafka = settings_from_mapping(toml_of(config)).kafka
    assert result.stdout == f"cohort-sync: sent 2 records to {kafka.topic}\n"
    assert result.stderr == "cohort-sync: refused 1 line, not sent: 1 not JSON (first: line 2)\n"
    assert sorted(r.value or b"" for r in scan_topic(kafka, kafka.topic)) == sorted(C1[:2])
