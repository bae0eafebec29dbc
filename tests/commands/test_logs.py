"""The log: a normal rebalance is not a warning, and no mode service of ours chatters."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

import pytest
from mode import Service

import stream.faust
from stream.commands.logs import (
    FRAMEWORK_LOGGERS,
    REBALANCE_LOGGER,
    SERVICE_LOGGERS,
    configure_logging,
)


@pytest.fixture(autouse=True)
def _reset() -> object:
    yield
    configure_logging("warn")


def _heartbeat_during_a_rebalance() -> None:
    logging.getLogger(REBALANCE_LOGGER).warning(
        "Heartbeat failed for group %s because it is rebalancing", "cohort-sync"
    )


def test_aiokafka_s_rebalance_heartbeat_is_info(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging("info")
    with caplog.at_level(logging.INFO):
        _heartbeat_during_a_rebalance()
        logging.getLogger(REBALANCE_LOGGER).warning("Marking the coordinator dead")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Heartbeat failed for group cohort-sync because it is rebalancing"),
        ("WARNING", "Marking the coordinator dead"),
    ]


def test_it_is_not_shown_where_info_is_not(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging("warn")
    with caplog.at_level(logging.INFO):
        _heartbeat_during_a_rebalance()
    assert caplog.records == []


def test_every_mode_service_of_ours_has_its_chatter_dropped() -> None:
    """A mode service logs "[^--Name]: Starting..." under its class's logger (its module's,
    unless a framework class it extends names one): each must be filtered, or a framework
    logger, which shows warnings only."""
    loggers = {}
    for module_info in pkgutil.iter_modules(stream.faust.__path__, "stream.faust."):
        module = importlib.import_module(module_info.name)
        for _, kind in inspect.getmembers(module, inspect.isclass):
            if kind.__module__ == module.__name__ and issubclass(kind, Service):
                loggers[kind.__name__] = kind.logger.name
    assert loggers["SafeApp"] == "stream.faust.fixes"  # the search finds them
    unfiltered = {
        name: logger
        for name, logger in loggers.items()
        if logger not in SERVICE_LOGGERS and logger.split(".")[0] not in FRAMEWORK_LOGGERS
    }
    assert not unfiltered
