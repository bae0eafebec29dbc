"""`cohort-sync worker`: what runs before the Faust worker starts, and its start.

The topics are made (or found, which decides the partition count) by a forked process
while the worker imports (`forked.py`), the plan is logged in the worker's first lines, and
the worker runs on the Faust edge (`stream/faust/worker.py`); with no broker configured, an
embedded one runs beside it.

Faust's worker takes SIGTERM over only once its event loop runs, a second or two after the
start. Until then a SIGTERM stops the start here, so that what was started is stopped too:
the topic check, and the embedded broker, which runs in a session of its own (a signal to
the worker's process group does not reach it) and without this would outlive a worker
stopped while starting.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import shlex
import signal
import sys
from dataclasses import replace
from typing import Any

from stream.commands.forked import Forked
from stream.commands.logs import configure_logging
from stream.commands.terminate import Terminated, sigterm_raises
from stream.config import BROKER_ENV, CONFIG_ENV, KafkaSettings, Settings, load_settings
from stream.domain.wording import count
from stream.errors import CohortSyncError
from stream.kafka.cluster import BrokerInfo
from stream.ops.collector import tune_gc
from stream.ops.imports import without_pandas

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """`cohort-sync worker`: the topics made or checked, the plan logged, then the worker
    until SIGTERM or SIGINT (with an embedded broker when none is configured). A SIGTERM
    while it starts stops it there, with one line, and exit code 0."""
    try:
        with sigterm_raises():  # from before the imports: they are most of a start
            return _run(args)
    except Terminated:
        print("cohort-sync: stopped (SIGTERM) while starting", file=sys.stderr)
        return 0


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, syncs_required=True)
    configure_logging(args.log_level)
    _probe_folders(settings)
    with contextlib.ExitStack() as stack:
        embedded = settings.kafka.broker is None
        # Beside the imports below, on the other core (`forked.py`); embedded, the broker
        # starts after them.
        checked = None if embedded else stack.enter_context(_topics_checked(settings))
        from stream.faust.run import faust_url
        from stream.faust.worker import Worker, run_worker
        from stream.kafka.embedded import TANSU_FAUST_SETTINGS, EmbeddedBroker

        stack.enter_context(without_pandas())
        if checked is None:
            broker = stack.enter_context(EmbeddedBroker())
            print(_feed_embedded(broker.bootstrap, args.config), flush=True)
            settings = replace(settings, kafka=replace(settings.kafka, broker=broker.url))
            info = _ensure_topics(settings.kafka)
        else:
            info = checked.result()
        settings = _with_real_partition_count(settings, info.partitions)
        _log_plan(settings)
        # Faust creates nothing (every topic exists now), but declares its topics with this.
        defaults: dict[str, Any] = {"topic_replication_factor": info.replication_factor}
        if info.is_tansu:
            defaults.update(TANSU_FAUST_SETTINGS)
        worker = Worker(
            settings,
            broker_url=faust_url(settings),
            faust_defaults=defaults,
            config_path=args.config or os.environ.get(CONFIG_ENV),
            replace_local_files=embedded,
        )
        tune_gc()
        try:
            run_worker(worker, loglevel=args.log_level)
        finally:
            # Faust's loop gives SIGTERM back to its default action when it closes. The
            # worker is stopping already: let what is left (the embedded broker) stop too.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0


def _topics_checked(settings: Settings) -> Forked[BrokerInfo]:
    return Forked(functools.partial(_ensure_topics, settings.kafka), what="the topic check")


def _ensure_topics(kafka: KafkaSettings) -> BrokerInfo:
    from stream.kafka.topics import ensure_topics

    return ensure_topics(kafka)


def _probe_folders(settings: Settings) -> None:
    """A `file://` folder the worker cannot create stops it at start with one line, instead
    of a sync retried for ever (an S3 destination is probed by `check`, not here)."""
    from stream.errors import PermanentSinkError
    from stream.sinks import open_sink

    for name, destination in settings.destinations.items():
        if destination.scheme == "file":
            try:
                open_sink(destination).probe()
            except PermanentSinkError as exc:
                raise CohortSyncError(f"destination {name}: {exc}") from None


def _feed_embedded(bootstrap: str, config: str | None) -> str:
    """What to run in another terminal to feed the embedded broker, exactly."""
    config_option = f" --config {shlex.quote(config)}" if config else ""
    return (
        f"cohort-sync: embedded broker listening on {bootstrap} (in memory: its topics end "
        "with the worker, so files an earlier run left in a folder are replaced)\n"
        "cohort-sync: feed it from another terminal, for example with sample events:\n"
        f"  cohort-sync sample-events | {BROKER_ENV}={bootstrap} cohort-sync produce"
        f"{config_option} -"
    )


def _log_plan(settings: Settings) -> None:
    """The worker's first lines: where it reads, where it writes."""
    kafka, log = settings.kafka, logging.getLogger("stream.worker")
    log.info(
        "broker %s: input topic %s (%s), dead letters to %s",
        kafka.broker,
        kafka.topic,
        count(kafka.partitions, "partition"),
        kafka.dlq_topic,
    )
    for name, destination in settings.destinations.items():
        rules = [r for r in settings.syncs if r.destination == name]
        described = ", ".join(f"{r.cohort} {r.cadence}" for r in rules) or "no sync"
        log.info("destination %s: %s (%s)", name, destination.url, described)


def _with_real_partition_count(settings: Settings, partitions: int) -> Settings:
    """An existing input topic decides the partition count of everything the worker makes."""
    if partitions == settings.kafka.partitions:
        return settings
    logging.getLogger(__name__).warning(
        "topic %s has %d partitions, not kafka.partitions = %d: using %d",
        settings.kafka.topic,
        partitions,
        settings.kafka.partitions,
        partitions,
    )
    return replace(settings, kafka=replace(settings.kafka, partitions=partitions))
