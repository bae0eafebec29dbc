"""The benchmark's framework floor, run as `python -m benchmarks.floor --config PATH`: plain
Faust with the worker's settings and topic, an agent that only decodes each record as JSON
and drops it (no state, no table, no syncs)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from stream.config import Settings, load_settings
from stream.faust.run import faust_url, run_app
from stream.kafka.embedded import TANSU_FAUST_SETTINGS
from stream.kafka.topics import ensure_topics
from stream.ops.collector import tune_gc

__all__ = ["create_floor_app", "main"]


def create_floor_app(
    settings: Settings, *, broker_url: str, faust_defaults: Mapping[str, Any] | None = None
) -> faust.App:
    """The benchmark's framework floor: the same Faust settings and topic, an agent that only
    decodes each record as JSON and drops it (no state, no table, no syncs)."""
    app = faust.App(
        settings.kafka.app_id,
        broker=broker_url,
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        web_enabled=False,
        **{**(faust_defaults or {}), **settings.faust},
    )
    topic = app.topic(
        settings.kafka.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic, name="cohort-sync-floor")
    async def decode_only(stream: Any) -> None:
        async for value in stream:
            json.loads(value)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--config", required=True, metavar="PATH")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    tansu = ensure_topics(settings.kafka).is_tansu  # as the worker: Tansu's settings on Tansu
    app = create_floor_app(
        settings,
        broker_url=faust_url(settings),
        faust_defaults=TANSU_FAUST_SETTINGS if tansu else {},
    )
    tune_gc()  # as the worker: the floor is the same framework with the same settings
    run_app(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
