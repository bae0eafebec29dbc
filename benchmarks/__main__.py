"""`python -m benchmarks [--quick]` (`make bench`, `make bench-quick`)."""

from __future__ import annotations

import argparse

from benchmarks.bench import run_bench

parser = argparse.ArgumentParser(
    prog="python -m benchmarks",
    description=(
        "Start a broker (Apache Kafka, or Tansu) and a moto S3 server, then measure in one "
        "run: raw aiokafka consumption, a stateless Faust agent, the real worker on single "
        "events and on Amplitude's batch form, the flush of a 1,000,000-member cohort against"
        " a bare pyarrow write + put, memory per member and state growth under churn. Prints "
        "a table, then one JSON line. Needs the test extras (moto[server])."
    ),
)
parser.add_argument(
    "--quick",
    action="store_true",
    help="smaller sizes (flush still at 1,000,000 members), one run each",
)
parser.add_argument(
    "--broker",
    choices=("apache", "tansu"),
    default="apache",
    help="Apache Kafka (default; needs a JDK and Maven, as make test) or the embedded Tansu",
)
parser.add_argument(
    "--scale",
    action="store_true",
    help="instead: one cohort of 10,000,000 members on one worker's state, in this process "
    "(no broker): bytes per member, restart to ready, the first and a steady sync against "
    "a bare pyarrow write (about 10 minutes and 3 GB)",
)
parser.add_argument(
    "--members",
    type=int,
    default=10_000_000,
    help="the cohort's members with --scale (default: 10,000,000)",
)
arguments = parser.parse_args()
if arguments.scale:
    from benchmarks.one_cohort import run_scale

    run_scale(arguments.members)
else:
    run_bench(quick=arguments.quick, broker_kind=arguments.broker)
