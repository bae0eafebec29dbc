"""`cohort-sync worker | check | demo | replay | lag | produce | dead-letters | ...`: the
command line.

A user mistake (bad config, unreachable broker, missing file) prints one line on stderr
and exits 2; there is no traceback for those. A worker that stopped itself because it could
not go on (`WorkerFault`) prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from stream import __version__
from stream.commands import worker as worker_command
from stream.commands.logs import configure_logging
from stream.config import BROKER_ENV, CONFIG_ENV, Settings, load_settings
from stream.domain.wording import count
from stream.errors import CohortSyncError, OptionError, WorkerFault
from stream.ops.collector import collect_rarely

__all__ = ["main", "program"]

_DESCRIPTION = """\
Stream cohort membership changes from Kafka into entering/exiting/existing CSV files
(plus a manifest) per cohort and sync time, in S3 or a local folder.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names; its exit code."""
    return _main(_parser().parse_args(argv))


def program() -> int:
    """The `cohort-sync` program (the console script, `python -m stream.commands.cli`):
    `main`, except that the garbage collector runs rarely from the start (`collect_rarely`:
    the process is the program's) and a command marked `quick_exit` ends the process itself
    once done."""
    collect_rarely()
    args = _parser().parse_args()
    code = _main(args)
    if getattr(args, "quick_exit", False):
        _exit_now(code)
    return code


def _main(args: argparse.Namespace) -> int:
    try:
        code: int = args.run(args)
        return code
    except WorkerFault as exc:
        print(WorkerFault.line(str(exc)), file=sys.stderr)
        return 1
    except CohortSyncError as exc:
        for line in str(exc).splitlines():  # a config's problems: one line each
            print(f"cohort-sync: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, which frees every object
    boto3, pyarrow and the state made one by one: 0.1-0.25 s a replay spent after its
    summary line. Only for a command that has finished all its work by its return (no
    thread left to join, nothing buffered but the logs and stdio, flushed here)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)


_Commands = argparse._SubParsersAction  # what `add_subparsers` returns


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cohort-sync",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cohort-sync {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    _add_worker(commands)
    _add_check(commands)
    _add_demo(commands)
    _add_replay(commands)
    _add_lag(commands)
    _add_produce(commands)
    _add_dead_letters(commands)
    _add_sample_events(commands)
    _add_policy(commands)
    return parser


def _add_worker(commands: _Commands) -> None:
    worker = commands.add_parser(
        "worker",
        help="run the streaming worker until SIGTERM/SIGINT",
        description="Consume membership events, keep cohort membership in Faust tables and "
        "write every sync's three CSVs and manifest when its time is reached. Without "
        "[kafka].broker an embedded Tansu broker is started and stopped with the worker.",
    )
    _config_argument(worker)
    worker.add_argument(
        "--log-level", default="info", choices=["crit", "error", "warn", "info", "debug"]
    )
    worker.set_defaults(run=worker_command.run)


def _add_check(commands: _Commands) -> None:
    check = commands.add_parser(
        "check",
        help="check a config: the broker, every destination and the plan, writing nothing",
        description="Validate the config, reach the broker (the worker's topics and their "
        "partitions, the group's lag) and every destination without writing (who the "
        "credentials resolve to, the bucket and path, or the folder), and print the plan: "
        "each sync rule, the cohorts it covers, its next sync time and one example key. "
        "Exits 0 when everything is reachable, 1 when something is not (one line per "
        "problem), 2 for a config error.",
    )
    _config_argument(check)
    check.set_defaults(run=_run_check)


def _add_demo(commands: _Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="run everything on embedded defaults with simulated events",
        description="Start an embedded broker and a worker, feed a few simulated hours of "
        "events for several cohorts, wait for their syncs, check the files against a "
        "reference run, print where they are and a summary, and exit 0.",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path("cohort-sync-demo"),
        help="folder for the config, the events and the files (default: ./cohort-sync-demo)",
    )
    demo.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the syncs (default: 60)"
    )
    demo.set_defaults(run=_run_demo)


def _add_replay(commands: _Commands) -> None:
    replay = commands.add_parser(
        "replay",
        help="rebuild the files from the beginning of the topic",
        description="Read the input topic from its beginning to the end offsets seen at "
        "start, with fresh in-memory state (no consumer group, no table topics: a running "
        "worker is not disturbed), write the syncs as the worker would, then exit. For the "
        "same input the files are byte-identical to the worker's.",
    )
    _config_argument(replay)
    replay.add_argument(
        "--since",
        metavar="TIME",
        help="write only syncs at or after this ISO-8601 time (state is still "
        "built from the beginning)",
    )
    replay.add_argument(
        "--until", metavar="TIME", help="write only syncs at or before this ISO-8601 time"
    )
    replay.add_argument(
        "--prefix",
        metavar="P",
        help="put P in front of every destination's path: s3://b/exports -> "
        "s3://b/P/exports (file:// destinations get a P subfolder)",
    )
    replay.add_argument("--destination", metavar="NAME", help="write only this destination's syncs")
    replay.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files that hold other bytes (by default files are never "
        "replaced: identical ones are left alone, different ones kept and counted)",
    )
    replay.add_argument(
        "--processes",
        type=_positive_int,
        metavar="N",
        help="share the partitions among N processes (default: one per CPU this process "
        "may use, at most one per partition)",
    )
    # Its work is done (puts awaited, processes joined) when it returns
    replay.set_defaults(run=_run_replay, quick_exit=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _add_lag(commands: _Commands) -> None:
    lag = commands.add_parser(
        "lag",
        help="show how far the worker's consumer group is behind",
        description="Per partition of the input topic: the worker group's committed offset, "
        "the end offset, the lag, and the event-time freshness (now minus the partition's "
        "watermark, read from the worker's /status.json when [faust] web_port is set), "
        "plus totals.",
    )
    _config_argument(lag)
    lag.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {topic, partition, committed, end, lag}",
    )
    lag.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until interrupted"
    )
    lag.add_argument(
        "--max-lag",
        type=int,
        metavar="N",
        help="exit 1 when any partition's lag exceeds N (for cron and checks)",
    )
    lag.add_argument(
        "--worker-url",
        metavar="URL",
        help="the worker's web address (default: from [faust] web_port)",
    )
    lag.set_defaults(run=_run_lag)


def _add_produce(commands: _Commands) -> None:
    produce = commands.add_parser(
        "produce",
        help="send events from a JSON-lines file to the input topic",
        description="Send each non-blank line of FILE (or - for stdin) as one record to "
        "[kafka].topic, keyed by its cohort_id. A line that is not a JSON object with a "
        "cohort_id is refused (counted by reason, with the first line number; exit 1); the "
        "worker dead-letters what else it cannot use. A UTF-8 BOM is dropped.",
    )
    _config_argument(produce)
    produce.add_argument("file", metavar="FILE.jsonl", help="JSON-lines file, or - for stdin")
    produce.set_defaults(run=_run_produce)


def _add_dead_letters(commands: _Commands) -> None:
    dead = commands.add_parser(
        "dead-letters",
        help="list the records the worker dead-lettered, and send them back",
        description="List the dead-letter topic ([kafka].topic + '-dlq'), oldest first: "
        "when each record was dead-lettered, its source (topic/partition/offset), the "
        "reason, and the start of its value. With --requeue, send the selected records back "
        "to the input topic (after a fix), each with a header cohort-sync-requeued-from; a "
        "record requeued before, or the dead letter of a requeued copy, is not sent again.",
    )
    _config_argument(dead)
    dead.add_argument(
        "--since", metavar="TIME", help="dead-lettered at or after TIME (ISO 8601 with offset)"
    )
    dead.add_argument("--until", metavar="TIME", help="dead-lettered before TIME")
    dead.add_argument("--reason", metavar="TEXT", help="whose reason contains TEXT (any case)")
    dead.add_argument("--limit", type=int, metavar="N", help="only the oldest N that match")
    dead.add_argument("--json", action="store_true", help="print a JSON list")
    dead.add_argument(
        "--requeue", action="store_true", help="send the selected records to the input topic"
    )
    dead.set_defaults(run=_run_dead_letters)


def _add_sample_events(commands: _Commands) -> None:
    sample = commands.add_parser(
        "sample-events",
        help="print four hours of example events that end a minute ago (JSON lines)",
        description="Print example membership events on stdout, one JSON value per line: "
        "cohorts c1, trial and power-users over the four hours up to a minute ago, one batch "
        "message among them. Pipe them into `cohort-sync produce ... -` to see a worker write "
        "the syncs of those hours at once.",
    )
    sample.add_argument("--seed", type=int, default=7, help="another seed, other events")
    sample.set_defaults(run=_run_sample_events)


def _add_policy(commands: _Commands) -> None:
    policy = commands.add_parser(
        "policy",
        help="print the least-privilege IAM policy for the S3 destinations, or the Kafka ACLs",
        description="Print one JSON policy document: without --principal an IAM identity "
        "policy for the worker's own role; with it a bucket policy granting that principal. "
        "It grants exactly the S3 actions the worker, replay and /health use, on exactly the "
        "destination's bucket and path, plus kms:GenerateDataKey and kms:Decrypt on "
        "kms_key_id and sts:AssumeRole on role_arn (identity policy) when they are set. "
        "With --kafka: the Kafka ACLs the worker, replay, lag, check and dead-letters need "
        "(input and dead-letter topics, the own topics as a prefix on app_id, the group), as "
        "kafka-acls.sh lines, or with --json as JSON naming the commands each one is for.",
    )
    _config_argument(policy)
    policy.add_argument("--destination", metavar="NAME", help="only this destination")
    policy.add_argument(
        "--principal",
        metavar="ARN|User:NAME",
        help="a bucket policy granting this role or account; with --kafka, the Kafka "
        "principal (default: the config's sasl_username or oauth_client_id)",
    )
    policy.add_argument("--kafka", action="store_true", help="the Kafka ACLs instead")
    policy.add_argument("--json", action="store_true", help="with --kafka: JSON, not commands")
    policy.set_defaults(run=_run_policy)


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML config file (default: ${CONFIG_ENV}); ${BROKER_ENV} overrides [kafka].broker",
    )


def _run_check(args: argparse.Namespace) -> int:
    from stream.ops.check import run_check

    settings = load_settings(args.config, syncs_required=True)
    configure_logging("crit")  # kafka-python logs every failed connection attempt
    source = args.config or os.environ.get(CONFIG_ENV, "")
    return run_check(settings, source, int(time.time() * 1000), sys.stdout)


def _run_demo(args: argparse.Namespace) -> int:
    from stream.commands.demo import run_demo

    return run_demo(args.dir, timeout=args.timeout)


def _run_replay(args: argparse.Namespace) -> int:
    from stream.commands.replay import ReplayOptions, parse_moment, run_replay
    from stream.commands.terminate import Terminated
    from stream.ops.collector import tune_gc

    settings = load_settings(args.config, syncs_required=True)
    if settings.kafka.broker is None:
        raise CohortSyncError(
            f"replay needs [kafka].broker or ${BROKER_ENV}: the embedded "
            "broker keeps no topic between runs"
        )
    options = ReplayOptions(
        since=parse_moment(args.since, "--since") if args.since else None,
        until=parse_moment(args.until, "--until") if args.until else None,
        prefix=args.prefix,
        destination=args.destination,
        overwrite=args.overwrite,
        processes=args.processes,
    )
    configure_logging("warn")
    tune_gc()
    try:
        run_replay(settings, options)
    except Terminated:  # only with processes: one process ends where it is
        print(
            "cohort-sync: replay stopped (SIGTERM): the files written so far stay, and "
            "a replay run again writes the rest",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    return 0


def _run_policy(args: argparse.Namespace) -> int:
    from stream.ops.policy import policy_document, render_policy

    settings = load_settings(args.config, secrets=False)  # it connects to nothing
    if args.kafka:
        return _print_kafka_acls(settings, args)
    if args.json:
        raise OptionError("--json", "is for --kafka: the IAM policy is JSON already")
    document = policy_document(settings, destination=args.destination, principal=args.principal)
    sys.stdout.write(render_policy(document))
    return 0


def _print_kafka_acls(settings: Settings, args: argparse.Namespace) -> int:
    from stream.ops.kafka_policy import (
        kafka_acls,
        kafka_principal,
        render_acl_commands,
        render_acls_json,
    )

    if args.destination is not None:
        raise OptionError("--destination", "is for the S3 policy, not --kafka")
    principal = kafka_principal(settings, args.principal)
    acls = kafka_acls(settings)
    if args.json:
        sys.stdout.write(render_acls_json(acls, principal))
    else:
        bootstrap = (
            ",".join(settings.kafka.bootstrap_servers()) if settings.kafka.broker else "HOST:9092"
        )
        sys.stdout.write(render_acl_commands(acls, principal, bootstrap))
    return 0


def _run_sample_events(args: argparse.Namespace) -> int:
    from stream.commands.demo import sample_events

    lines = sample_events(int(time.time() * 1000), seed=args.seed)
    sys.stdout.buffer.write(b"".join(line + b"\n" for line in lines))
    return 0


def _run_lag(args: argparse.Namespace) -> int:
    from stream.ops.lag import (
        freshness_note,
        measure_lag,
        render_json,
        render_table,
        worker_url,
    )

    settings = load_settings(args.config)
    if settings.kafka.broker is None:
        raise CohortSyncError(f"lag needs [kafka].broker or ${BROKER_ENV}")
    url = args.worker_url or worker_url(settings)
    while True:
        rows = measure_lag(settings, int(time.time() * 1000), url)
        too_far = args.max_lag is not None and any(row.lag > args.max_lag for row in rows)
        if args.watch and sys.stdout.isatty():
            print("\x1b[2J\x1b[H", end="")
        print(render_json(rows) if args.json else render_table(rows), flush=True)
        if not args.json and all(row.freshness_seconds is None for row in rows):
            note = freshness_note(url)
            if note is not None:
                print(note, flush=True)
        if too_far and not args.json:
            print(f"lag above --max-lag {args.max_lag}", file=sys.stderr)
        if not args.watch:
            return 1 if too_far else 0
        time.sleep(args.watch)


def _run_produce(args: argparse.Namespace) -> int:
    from stream.commands.produce import LineCheck
    from stream.kafka.client import produce_lines
    from stream.kafka.topics import ensure_topics

    settings = load_settings(args.config)
    if settings.kafka.broker is None:
        raise CohortSyncError(f"produce needs [kafka].broker or ${BROKER_ENV}")
    try:
        handle = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CohortSyncError(f"cannot read {args.file}: {exc.strerror}") from None
    lines = LineCheck(handle)
    with handle:
        ensure_topics(settings.kafka)
        sent = produce_lines(settings.kafka, lines)
    print(f"cohort-sync: sent {count(sent, 'record')} to {settings.kafka.topic}")
    refused = lines.summary()
    if refused is not None:
        print(f"cohort-sync: {refused}", file=sys.stderr)
        return 1
    return 0


def _run_dead_letters(args: argparse.Namespace) -> int:
    from stream.commands.replay import parse_moment
    from stream.ops.deadletters import Selection, run_dead_letters

    settings = load_settings(args.config)
    if settings.kafka.broker is None:
        raise CohortSyncError(f"dead-letters needs [kafka].broker or ${BROKER_ENV}")
    if args.limit is not None and args.limit < 1:
        raise OptionError("--limit", f"{args.limit} is not a positive count")
    selection = Selection(
        since_ms=parse_moment(args.since, "--since") if args.since else None,
        until_ms=parse_moment(args.until, "--until") if args.until else None,
        reason=args.reason,
        limit=args.limit,
    )
    configure_logging("crit")  # kafka-python logs every failed connection attempt
    return run_dead_letters(settings.kafka, selection, as_json=args.json, requeue=args.requeue)


if __name__ == "__main__":
    sys.exit(program())
