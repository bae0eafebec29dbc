"""The worker's and the commands' log: one format, our lines at the chosen level, the
frameworks' only where they tell an operator something.

- Faust's and mode's service chatter (`[^-SafeApp]: Starting...`) is dropped below warnings.
- kafka-python's retries are not logged: each failure is raised to us and said once.
- aiokafka's "Heartbeat failed ... because it is rebalancing" comes at every normal
  rebalance: it is logged at INFO, not as a warning.
"""

from __future__ import annotations

import logging

__all__ = ["configure_logging", "FRAMEWORK_LOGGERS", "SERVICE_LOGGERS"]

#: The frameworks' loggers: warnings and errors only, unless `--log-level debug`.
FRAMEWORK_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "botocore", "boto3", "urllib3")
#: Our modules whose classes are mode services: their "Starting...", "Stopping..." lines
#: are the frameworks' too.
SERVICE_LOGGERS = (
    "stream.faust.fixes",
    "stream.faust.producer",
    "stream.faust.consumer",
    "stream.faust.tables",
    "stream.faust.handoff",
)
#: Where aiokafka logs a heartbeat that found its group rebalancing.
REBALANCE_LOGGER = "aiokafka.consumer.group_coordinator"


def configure_logging(level: str) -> None:
    """Our own lines at `level`; the frameworks' chatter only at `debug`."""
    names = {"crit": "CRITICAL", "warn": "WARNING"}
    number = logging.getLevelName(names.get(level, level.upper()))
    logging.basicConfig(level=number, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    frameworks = logging.DEBUG if level == "debug" else max(number, logging.WARNING)
    for name in FRAMEWORK_LOGGERS:
        logging.getLogger(name).setLevel(frameworks)
    # kafka-python is our own clients' (topics, produce, replay, lag): each failure it logs
    # line by line while it retries is raised to us in the end and said once, in one line.
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).removeFilter(_not_service_chatter)
        if level != "debug":
            logging.getLogger(name).addFilter(_not_service_chatter)
    coordinator = logging.getLogger(REBALANCE_LOGGER)
    for old in [f for f in coordinator.filters if isinstance(f, _RebalanceIsInfo)]:
        coordinator.removeFilter(old)
    coordinator.addFilter(_RebalanceIsInfo(number))


def _not_service_chatter(record: logging.LogRecord) -> bool:
    """Drop a mode service's own lines below warnings (`[^-SafeApp]: Starting...`), and
    Faust's "Missing sensor state" warning at every rebalance (no sensors are set up)."""
    text = str(record.msg)
    if "Missing sensor state" in text:
        return False
    return record.levelno >= logging.WARNING or not text.startswith("[^")


class _RebalanceIsInfo(logging.Filter):
    """aiokafka warns at every rebalance that a heartbeat found the group rebalancing: a
    normal event, shown at INFO (and only where INFO is shown)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "because it is rebalancing" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return self.level <= logging.INFO
        return True
