"""Work run in a forked process while this one goes on: the worker's topic check, done
beside its imports.

A worker's start is over a second of imports on one core, with the other idle. The topic
check (`kafka.topics.ensure_topics`) needs kafka-python, which nothing else in the worker
imports (0.2-0.3 s), and then waits on the broker. Forked before the imports, it runs on
the other core meanwhile, and the worker never imports kafka-python.

Fork before any thread starts: the child runs `work` alone. It sends back what `work`
returned or raised, pickled, and ends without running the parent's exit handlers. A
SIGTERM ends the child at once; SIGINT (a terminal's Ctrl-C reaches the whole process
group) is left to the parent, which ends the child when it stops. A parent that ends
without ending it (SIGKILL) takes it along: the child asks for a SIGTERM when its parent
ends (Linux's `PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Generic, NoReturn, TypeVar

from stream.errors import CohortSyncError

__all__ = ["Forked"]

T = TypeVar("T")

#: The signals that stop a command (`terminate.py`, Ctrl-C).
_STOPS = {signal.SIGTERM, signal.SIGINT}
#: prctl(2)'s option: the signal a process gets when its parent ends.
_PR_SET_PDEATHSIG = 1


class Forked(Generic[T]):
    """`work()` in a forked process. `result()` waits for it and returns what it returned
    or raises what it raised; leaving the `with` block ends a child still running."""

    def __init__(self, work: Callable[[], T], *, what: str) -> None:
        """`what`: the work in a few words, for the error when the child dies unanswered."""
        self.what = what
        self._pid: int | None = None
        readable, writable = os.pipe()
        parent = os.getpid()
        # A stop signal waits until the child is noted: its handler raising in between would
        # leave the child to run on.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(readable)
                _run_child(work, writable, parent, mask)
            os.close(writable)
            self._pid, self._answers = pid, os.fdopen(readable, "rb")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def __enter__(self) -> Forked[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def result(self) -> T:
        """What `work` returned, once the child has ended; what it raised is raised here."""
        with self._answers:
            answer = self._answers.read()  # to the end: the child has exited (or closed it)
        status = self._reap()
        if not answer:
            raise CohortSyncError(f"{self.what} ended without an answer ({_ended(status)})")
        returned, value = pickle.loads(answer)
        if not returned:
            raise value
        return value

    def close(self) -> None:
        """End the child if it still runs (the parent stops before it needs the answer)."""
        if self._pid is not None:
            os.kill(self._pid, signal.SIGTERM)
            self._reap()
        self._answers.close()

    def _reap(self) -> int:
        assert self._pid is not None
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        return status


def _run_child(
    work: Callable[[], object], writable: int, parent: int, mask: set[int | signal.Signals]
) -> NoReturn:
    code = 1  # whatever escapes below must not return into the parent's code
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _end_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            answer = _pickled(True, work())
        except BaseException as exc:  # noqa: BLE001 - every outcome goes to the parent
            answer = _pickled(False, exc)
        with os.fdopen(writable, "wb") as answers:
            answers.write(answer)
        logging.shutdown()  # flushes the log lines of `work`: os._exit would not
        sys.stdout.flush()
        sys.stderr.flush()
        code = 0
    finally:
        os._exit(code)


def _end_with(parent: int) -> None:
    """SIGTERM to this process once `parent` ends, however it ends (on Linux): a parent
    killed, or stopped between the fork and its `with` block, leaves no child running on."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before that
        os._exit(1)


def _pickled(returned: bool, value: object) -> bytes:
    """The answer, or for an error that does not survive pickling (its class takes other
    arguments than its message, say), a `CohortSyncError` with its message and trace."""
    try:
        answer = pickle.dumps((returned, value))
        pickle.loads(answer)
        return answer
    except Exception:  # noqa: BLE001 - whatever pickle raises, the parent gets a line
        if returned:
            raise
        assert isinstance(value, BaseException)
        described = "".join(traceback.format_exception(value)).rstrip()
        return pickle.dumps((False, CohortSyncError(f"in a forked process: {described}")))


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
