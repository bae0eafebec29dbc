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
arguments = parser.parse_args()
run_bench(quick=arguments.quick, broker_kind=arguments.broker)
