"""Work in a forked process: what it returns or raises comes back, a child that dies
unanswered is one line, and a child still running ends with the block. The worker's start
forks its topic check this way (tests/integration/test_topics.py shows it there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.commands.forked import Forked
from stream.errors import BrokerError, CohortSyncError
from stream.kafka.cluster import BrokerInfo
from stream.kafka.embedded import free_port


def test_the_work_runs_in_another_process_and_its_result_comes_back() -> None:
    with Forked(lambda: (os.getpid(), BrokerInfo(3, "c1", 1)), what="work") as forked:
        pid, info = forked.result()
    assert pid != os.getpid()
    assert info == BrokerInfo(3, "c1", 1)
    with pytest.raises(ChildProcessError):  # reaped: no zombie is left
        os.waitpid(pid, os.WNOHANG)


def _refused() -> None:
    raise BrokerError("cannot set up topics on kafka://b:9092: refused")


def test_what_the_work_raises_is_raised_by_result() -> None:
    with Forked(_refused, what="work") as forked, pytest.raises(BrokerError, match="refused"):
        forked.result()


class _TwoPartError(Exception):
    def __init__(self, part: str, other: str) -> None:
        super().__init__(f"{part}/{other}")  # pickle would call it with the message alone


def _raises_unpicklable() -> None:
    raise _TwoPartError("left", "right")


def test_an_error_that_does_not_pickle_comes_back_as_one_with_its_message_and_trace() -> None:
    forked = Forked(_raises_unpicklable, what="work")
    with forked, pytest.raises(CohortSyncError) as raised:
        forked.result()
    assert "_TwoPartError: left/right" in str(raised.value)
    assert "_raises_unpicklable" in str(raised.value)  # where it was raised


def test_a_child_that_ends_without_an_answer_is_an_error_that_says_how_it_ended() -> None:
    forked = Forked(lambda: os._exit(3), what="the topic check")
    unanswered = r"the topic check ended without an answer \(exit status 3\)"
    with forked, pytest.raises(CohortSyncError, match=unanswered):
        forked.result()


def test_a_child_still_running_when_the_block_ends_is_ended_and_reaped() -> None:
    with Forked(lambda: time.sleep(600), what="work") as forked:
        pid = forked._pid
        assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_what_the_child_writes_to_stderr_reaches_the_parents(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def work() -> int:
        sys.stderr.write("a line from the child\n")  # buffered: flushed before its exit
        return 1

    with Forked(work, what="work") as forked:
        assert forked.result() == 1
    assert "a line from the child" in capfd.readouterr().err


#: `cohort-sync worker` whose topic check never ends (the forked child runs the check as
#: the worker's module has it when it forks).
_WORKER_WITH_ENDLESS_CHECK = """
import sys, time
import stream.commands.worker as command

command._ensure_topics = lambda kafka: time.sleep(3600)
from stream.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_worker_checks_its_topics_ends_the_forked_check_too(
    tmp_path: Path,
) -> None:
    """A SIGTERM to a worker whose topic check has not answered stops it with its one line,
    and ends the check with it: a worker that waited for the check would never exit here."""
    config = tmp_path / "worker.toml"
    config.write_text(f"""
[kafka]
broker = "kafka://127.0.0.1:{free_port()}"
[[destinations]]
name = "disk"
url = "{(tmp_path / "out").as_uri()}"
[[syncs]]
cohort = "*"
destination = "disk"
cadence = "hourly"
""")
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER_WITH_ENDLESS_CHECK, "worker", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        check = _first_child(worker.pid)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "cohort-sync: stopped (SIGTERM) while starting" in err
    assert "Traceback" not in err
    _wait_ended(check)


def test_a_child_ends_when_its_parent_is_killed() -> None:
    """A parent killed (or stopped before its `with` block) cannot end its child: the child
    gets a SIGTERM when its parent ends."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from stream.commands.forked import Forked\n"
            "forked = Forked(lambda: time.sleep(600), what='work')\n"
            "time.sleep(600)",
        ]
    )
    try:
        child = _first_child(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    _wait_ended(child)


def _wait_ended(pid: int, timeout: float = 60) -> None:
    """Wait until process `pid` has ended (gone, or a zombie left to be reaped)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline, f"process {pid} still runs after {timeout:.0f}s"
        time.sleep(0.01)


def _first_child(pid: int, timeout: float = 60) -> int:
    """The first process `pid` forks, once it has."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while not (found := children.read_text().split()):
        assert time.monotonic() < deadline, f"process {pid} forked nothing in {timeout:.0f}s"
        time.sleep(0.01)
    return int(found[0])
