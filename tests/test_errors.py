"""Two exception trees by cause: every error a user can cause is a CohortSyncError, printed
as one line; the worker's internal signals are not, so a leaked one is never shown as a
user's mistake."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

import stream.errors as errors
from stream.commands import cli
from stream.errors import describe

INTERNAL = {errors.WriteAbandoned, errors.WorkerFault, errors.RecordTooLarge}


def test_every_error_belongs_to_one_tree() -> None:
    classes = {
        getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)
    }
    users = {cls for cls in classes if issubclass(cls, errors.CohortSyncError)}
    internal = {cls for cls in classes if issubclass(cls, errors.InternalSignal)}
    assert internal - {errors.InternalSignal} == INTERNAL
    assert users & internal == set()
    assert users | internal == classes


def test_a_config_error_is_one_line_naming_the_key() -> None:
    error = errors.ConfigError("syncs[0].cadence", "'weekly' is not a duration")
    assert str(error) == "config error: syncs[0].cadence: 'weekly' is not a duration"
    assert "\n" not in str(error) and error.key == "syncs[0].cadence"


def test_a_leaked_internal_signal_is_not_printed_as_a_user_mistake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def leak(_: object) -> int:
        raise errors.WriteAbandoned("a sync was not written")

    monkeypatch.setattr(cli, "_run_policy", leak)
    with pytest.raises(errors.WriteAbandoned):
        cli.main(["policy", "--config", "unused.toml"])
    assert capsys.readouterr().err == ""


def test_describe_names_the_type_once() -> None:
    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(KafkaError("gone")) == "KafkaError: gone"  # aiokafka's str names it
    assert (
        describe(TopicAuthorizationFailedError("t"))
        == "[Error 29] TopicAuthorizationFailedError: t"
    )
