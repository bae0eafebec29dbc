"""Apache Kafka for the tests: KRaft brokers from Maven Central's jars, on loopback.

`kafka_jars(version)` fetches the broker's jars once with Maven (`tests/brokers/pom.xml`)
into a cache folder; `ApacheKafka(nodes=1)` formats storage in a temporary folder, starts
each node (broker and controller in one JVM) on free loopback ports with a small heap,
waits until every broker answers, and stops each by its own process group. A cluster of
three is for the broker-fault tests: `kill_node`, `stop_node`, `start_node`, `pause_node`
and `resume_node`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from stream.kafka.embedded import free_port

__all__ = [
    "DEFAULT_VERSION",
    "ApacheKafka",
    "BrokerStartError",
    "kafka_jars",
    "die_with_parent",
    "prerequisites",
]

#: The newest Apache Kafka that Maven Central serves (pinned); what `make test` runs on.
DEFAULT_VERSION = "4.4.0"
# The older versions `make test-compat` runs on are listed once, in the Makefile.

POM = Path(__file__).with_name("pom.xml")
REPOSITORY = Path(__file__).resolve().parents[2]
#: How long a node may take to answer after its JVM starts (a slow machine, one core).
STARTUP_TIMEOUT = 120.0

LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


class BrokerStartError(RuntimeError):
    """The Apache Kafka fixture could not fetch its jars or start a node."""


def prerequisites() -> str | None:
    """None when a JDK and Maven are on the PATH, else one line saying what to install."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return None
    return (
        f"the Apache Kafka test broker needs {' and '.join(missing)} on the PATH: install a "
        "JDK 17 or newer and Maven (Debian: apt-get install openjdk-17-jdk-headless maven)"
    )


def cache_root() -> Path:
    """Where fetched jars live: `COHORT_SYNC_TEST_CACHE`, else `.cache/` in the repository."""
    return Path(os.environ.get("COHORT_SYNC_TEST_CACHE") or REPOSITORY / ".cache")


def kafka_jars(version: str = DEFAULT_VERSION) -> Path:
    """The folder holding Apache Kafka `version`'s broker jars, fetched with Maven the first
    time (a lock keeps two test runs from fetching into one folder at once)."""
    folder = cache_root() / "kafka" / version
    done = folder / ".complete"
    if done.exists():
        return folder
    problem = prerequisites()
    if problem:
        raise BrokerStartError(problem)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        fetched = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.version={version}",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={folder}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fetched.returncode != 0 or not any(folder.glob("kafka_2.13-*.jar")):
            raise BrokerStartError(
                f"Maven could not fetch Apache Kafka {version}: "
                f"{(fetched.stdout + fetched.stderr).strip()[-1500:]}"
            )
        done.touch()
    return folder


@dataclass
class Node:
    """One KRaft node: broker and controller in one JVM."""

    id: int
    port: int
    controller_port: int
    folder: Path
    ports: dict[str, int] = field(default_factory=dict)
    """The ports of the cluster's extra listeners, by listener name."""
    process: subprocess.Popen[bytes] | None = None
    output: IO[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        text = ""
        for name in ("stdout.log", "server.log"):
            path = self.folder / name
            if path.exists():
                text += path.read_text(errors="replace")[-3000:]
        return text


class ApacheKafka:
    """`with ApacheKafka(nodes=3) as kafka: kafka.url` -> `kafka://127.0.0.1:P1,...`."""

    def __init__(
        self,
        *,
        version: str = DEFAULT_VERSION,
        nodes: int = 1,
        heap: str = "384m",
        config: Mapping[str, str] | None = None,
        listeners: Mapping[str, str] | None = None,
        format_args: Sequence[str] = (),
    ) -> None:
        """`config`: broker settings over the defaults below. `listeners`: extra listeners
        beside the plaintext one, name -> security protocol (`{"SASL_SSL": "SASL_SSL"}`),
        each on a free port of its own (`bootstrap_of`); their settings go in `config`.
        `format_args`: more arguments to the storage format (`--add-scram ...`)."""
        self.version = version
        self.size = nodes
        self.heap = heap
        self.extra = dict(config or {})
        self.listeners = dict(listeners or {})
        self.format_args = list(format_args)
        self.nodes: list[Node] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def bootstrap_of(self, listener: str) -> str:
        """`host:port,...` of an extra listener."""
        return ",".join(f"127.0.0.1:{node.ports[listener]}" for node in self.nodes)

    @property
    def description(self) -> str:
        nodes = "one node" if self.size == 1 else f"{self.size} nodes"
        return f"Apache Kafka {self.version} (KRaft, {nodes})"

    # -- the whole cluster

    def start(self) -> ApacheKafka:
        jars = kafka_jars(self.version)
        self._tmp = tempfile.TemporaryDirectory(prefix="apache-kafka-")
        root = Path(self._tmp.name)
        self.nodes = [
            Node(
                i + 1,
                free_port(),
                free_port(),
                root / f"node-{i + 1}",
                {name: free_port() for name in self.listeners},
            )
            for i in range(self.size)
        ]
        cluster_id = _cluster_id()
        try:
            for node in self.nodes:
                node.folder.mkdir()
                self._write_config(node)
                _format(jars, node, cluster_id, self.format_args)
            for node in self.nodes:
                self.start_node(node.id, wait=False)
            for node in self.nodes:
                self.wait_ready(node.id)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill every node: its storage is thrown away, and the last nodes of a cluster
        cannot shut down in a controlled way once the quorum is gone (each waits it out)."""
        for node in self.nodes:
            self.kill_node(node.id)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # -- one node, for the fault tests

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def start_node(self, node_id: int, *, wait: bool = True) -> None:
        node = self.node(node_id)
        if node.running():
            return
        jars = kafka_jars(self.version)
        if node.output is not None:
            node.output.close()
        node.output = open(node.folder / "stdout.log", "ab")  # noqa: SIM115 (closed in stop)
        node.process = subprocess.Popen(
            [
                "java",
                f"-Xmx{self.heap}",
                "-Xms64m",
                "-XX:+UseSerialGC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
                "-cp",
                f"{jars}/*",
                "kafka.Kafka",
                str(node.folder / "server.properties"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=node.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        if wait:
            self.wait_ready(node_id)

    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        """Stop one node by its own process group (SIGTERM: a controlled shutdown)."""
        node = self.node(node_id)
        process = node.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)  # a paused node cannot stop
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if node.output is not None:
            node.output.close()
            node.output = None

    def kill_node(self, node_id: int) -> None:
        self.stop_node(node_id, signal.SIGKILL)

    def pause_node(self, node_id: int) -> None:
        process = self.node(node_id).process
        assert process is not None
        os.killpg(process.pid, signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        process = self.node(node_id).process
        assert process is not None
        os.killpg(process.pid, signal.SIGCONT)

    def wait_ready(self, node_id: int, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until the node answers a metadata request that lists it as a broker."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        node = self.node(node_id)
        deadline = time.monotonic() + timeout
        while True:
            if node.process is None or node.process.poll() is not None:
                code = None if node.process is None else node.process.returncode
                raise BrokerStartError(
                    f"Apache Kafka {self.version} node {node.id} exited with {code} at start:\n"
                    f"{node.log()}"
                )
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=node.bootstrap,
                    request_timeout_ms=5000,
                    bootstrap_timeout_ms=2000,
                )
                try:
                    brokers = admin.describe_cluster().get("brokers") or []
                    if any(b.get("broker_id") == node.id for b in brokers):
                        return
                finally:
                    admin.close()
            except KafkaError:
                pass
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"Apache Kafka {self.version} node {node.id} did not answer on port "
                    f"{node.port} within {timeout:.0f}s:\n{node.log()}"
                )
            time.sleep(0.2)

    # -- configuration

    def _write_config(self, node: Node) -> None:
        replicas = str(min(self.size, 3))
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        extra = "".join(f",{name}://127.0.0.1:{node.ports[name]}" for name in self.listeners)
        protocols = "".join(f",{name}:{protocol}" for name, protocol in self.listeners.items())
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
                + extra
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}" + extra,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            + protocols,
            "log.dirs": str(node.folder / "data"),
            # As a production cluster: nothing is created by reading or writing a topic.
            "auto.create.topics.enable": "false",
            "default.replication.factor": replicas,
            "min.insync.replicas": "2" if self.size > 1 else "1",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": "2" if self.size > 1 else "1",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": "2" if self.size > 1 else "1",
            # A test's first group join need not wait for more members (the default 3 s).
            "group.initial.rebalance.delay.ms": "0",
            # Small machines: the log cleaner's buffer is 128 MiB by default.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            **self.extra,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        (node.folder / "server.properties").write_text("\n".join(lines) + "\n")
        (node.folder / "log4j2.properties").write_text(
            LOG4J2.format(log=node.folder / "server.log")
        )


def die_with_parent() -> None:
    """In the child before exec: a test run that dies (killed, say) takes its brokers along
    rather than leaving JVMs behind (Linux's parent-death signal)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded, not starting with
    "-" (as Kafka's own `Uuid.randomUuid` ensures): `kafka-storage format -t -T6S...` reads
    such an id as an option and fails, one format in 64."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format(jars: Path, node: Node, cluster_id: str, extra: Sequence[str]) -> None:
    formatted = subprocess.run(
        [
            "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
            "-cp",
            f"{jars}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node.folder / "server.properties"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if formatted.returncode != 0:
        raise BrokerStartError(
            f"formatting node {node.id}'s storage failed: "
            f"{(formatted.stdout + formatted.stderr).strip()[-1500:]}"
        )
