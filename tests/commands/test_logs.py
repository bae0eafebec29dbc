"""The log: a normal rebalance is not a warning."""

from __future__ import annotations

import logging

import pytest

from stream.commands.logs import REBALANCE_LOGGER, configure_logging


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
