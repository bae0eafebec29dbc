"""The command line: help texts, one-line errors, and the Faust pass-through."""

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.commands.cli import _parser, main
from stream.ops.collector import THRESHOLDS


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return python("-m", "stream.commands.cli", *args, cwd=cwd)


def python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """This interpreter run with `args` (`-c` and a script, or `-m` and a module)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


#: Every command the parser has (a new one is covered without being listed here).
COMMANDS = list(
    next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 5
    assert len(COMMANDS) >= 8  # read from the parser, not an empty list


def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[syncs]]\ncohort = "c1"\ndestination = "nowhere"\ncadence = "hourly"\n')
    result = run("worker", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cohort-sync: config error: syncs[0].destination: unknown destination 'nowhere' "
        "(none defined)"
    ]


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run("produce", "--config", str(tmp_path / "missing.toml"), "events.jsonl")
    assert result.returncode == 2
    assert "file not found" in result.stderr and "Traceback" not in result.stderr


def test_a_worker_with_no_syncs_stops_at_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text('[[destinations]]\nname = "d"\nurl = "file:///tmp/x"\n')
    result = run("worker", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cohort-sync: config error: syncs: none defined: add a [[syncs]] table naming a destination"
    ]


def test_the_frameworks_are_quiet_unless_the_log_level_is_debug() -> None:
    import logging

    from stream.commands.logs import configure_logging

    chatter = logging.LogRecord(
        "stream.faust.fixes", logging.INFO, __file__, 1, "[^-SafeApp]: Starting...", None, None
    )
    ours = logging.LogRecord(
        "stream.faust.consumer", logging.INFO, __file__, 1, "%s/%d: offsets", None, None
    )
    service = logging.getLogger("stream.faust.fixes")
    try:
        configure_logging("info")
        assert logging.getLogger("aiokafka").level == logging.WARNING
        # kafka-python's retries are raised to us and said in one line: not logged
        assert logging.getLogger("kafka").level == logging.CRITICAL
        assert not service.filter(chatter) and logging.getLogger("stream.faust.consumer").filter(
            ours
        )
        configure_logging("debug")
        assert logging.getLogger("faust").level == logging.DEBUG
        assert logging.getLogger("kafka").level == logging.DEBUG
        assert service.filter(chatter)
    finally:
        configure_logging("warn")


def test_sample_events_end_a_minute_before_now_and_are_valid_events() -> None:
    from stream.commands.demo import sample_events
    from stream.domain.events import parse_message
    from tests.scenario import JAN5, MIN, H

    now = JAN5 + 5 * H + 30 * MIN + 12_345
    events = [event for line in sample_events(now) for event in parse_message(line)]
    times = [event.time_ms for event in events]
    assert max(times) == JAN5 + 5 * H + 29 * MIN  # the heartbeats: the watermark reaches it
    assert min(times) >= now - 4 * H - 3 * MIN
    assert {event.cohort_id for event in events} == {"c1", "trial", "power-users"}


def test_a_worker_whose_folder_cannot_be_created_stops_at_start_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "proc.toml"
    config.write_text(
        '[[destinations]]\nname = "d"\nurl = "file:///proc/cohort-sync-out"\n'
        '[[syncs]]\ncohort = "*"\ndestination = "d"\ncadence = "hourly"\n'
    )
    result = run("worker", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cohort-sync: destination d: cannot create /proc/cohort-sync-out: No such file or directory"
    ]


@pytest.mark.parametrize("command", ["worker", "replay"])  # an admin client, a consumer
def test_an_unreachable_broker_is_one_line_and_exit_2_within_20_seconds(
    tmp_path: Path, command: str
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "c.toml"
    config.write_text(
        f'[kafka]\nbroker = "127.0.0.1:{port}"\n'
        f'[[destinations]]\nname = "d"\nurl = "file://{tmp_path}/out"\n'
        '[[syncs]]\ncohort = "*"\ndestination = "d"\ncadence = "hourly"\n'
    )
    started = time.monotonic()
    result = run(command, "--config", str(config))
    assert time.monotonic() - started < 20
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cohort-sync: cannot reach Kafka at 127.0.0.1:{port}: KafkaTimeoutError: "
        f"Unable to bootstrap from ['127.0.0.1:{port}']"
    ]


def test_a_quick_exit_still_delivers_what_was_printed_and_logged_and_its_code() -> None:
    """`_exit_now` skips the interpreter's teardown, which also flushes stdio: through a
    pipe, stdout is block-buffered, so what a command printed must be flushed first."""
    script = (
        "import logging, sys; from stream.commands.cli import _exit_now; "
        "logging.basicConfig(stream=sys.stderr); logging.getLogger('x').warning('logged'); "
        "print('summary line', end=''); sys.stderr.write('partial'); _exit_now(3)"
    )
    done = python("-c", script)
    assert done.returncode == 3
    assert done.stdout == "summary line"
    assert "logged" in done.stderr and done.stderr.endswith("partial")


def test_the_program_sets_the_collector_thresholds_before_its_command_runs() -> None:
    """A command's imports are most of its start; the collector's default thresholds made
    them walk what was imported so far again and again (`collector.collect_rarely`)."""
    script = (
        "import gc, sys; from stream.commands import cli; "
        "cli._main = lambda args: print(*gc.get_threshold()) or 0; "
        "sys.argv = ['cohort-sync', 'sample-events']; sys.exit(cli.program())"
    )
    done = python("-c", script)
    assert done.returncode == 0, done.stderr
    assert tuple(int(n) for n in done.stdout.split()) == THRESHOLDS


def test_only_replay_ends_its_process_at_once() -> None:
    """Its work is all done by its return; a worker's cleanup and a produce's flush are not
    to be cut short."""
    quick = {
        command
        for command in COMMANDS
        if getattr(
            _parser().parse_args([command, *_REQUIRED.get(command, [])]), "quick_exit", False
        )
    }
    assert quick == {"replay"}


#: Arguments a command cannot be parsed without.
_REQUIRED: dict[str, list[str]] = {"produce": ["-"]}
