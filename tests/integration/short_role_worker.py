"""`cohort-sync` whose assumed-role credentials last 900 s, STS's shortest (tests only).

    python short_role_worker.py worker --config PATH

botocore refreshes credentials within 15 minutes of their expiry, so these are refreshed
at once and again and again: a worker that keeps writing has written across refreshes.
"""

from __future__ import annotations

import sys

from stream.commands import cli
from stream.sinks import s3

if __name__ == "__main__":
    defaults = s3.S3Sink.__init__.__kwdefaults__
    assert defaults is not None
    defaults["role_seconds"] = 900
    sys.exit(cli.main(sys.argv[1:]))
