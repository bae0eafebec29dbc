"""`cohort-sync` with one fault injected into one stage of a record's handling (tests only).

    python faulty_worker.py STAGE MARKER worker --config PATH

The record whose value contains MARKER (a user id) fails at STAGE; everything else runs as
the real worker does:

- `parse`: parsing the record raises (a fault of the record: dead-lettered);
- `apply`: applying its event raises (a fault of the record: dead-lettered);
- `store`: journaling its member for the table raises (a fault of the worker: it stops);
- `forward`: forwarding it to its cohort's partition raises (the worker's: it stops);
- `sync`: handing the sync it makes due to its destination raises (the worker's: it stops);
- `recovery`: the first delivery of every changelog record never reaches the table recovery;
- `stop`: a stop blocks the event loop for good.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from faust.tables.manager import TableManager

from stream.commands import cli
from stream.domain.membership import Snapshot
from stream.engine import intake
from stream.faust.outbox import FaustOutbox
from stream.output.lanes import DestinationLanes
from stream.output.writer import SyncWriter
from stream.state.journal import Journal


class Injected(RuntimeError):
    pass


def inject(stage: str, marker: str) -> None:
    marked = marker.encode()
    if stage == "parse":
        parse = intake.parse_message

        def failing_parse(value: bytes | None) -> Any:
            if value is not None and marked in value:
                raise Injected("injected into parsing")
            return parse(value)

        intake.parse_message = failing_parse
    elif stage == "apply":
        of_event = Snapshot.of_event

        def failing_of_event(*args: Any) -> Snapshot:
            if args[3] == marker:
                raise Injected("injected into applying")
            return of_event(*args)

        Snapshot.of_event = staticmethod(failing_of_event)  # type: ignore[method-assign,assignment]
    elif stage == "store":
        touch = Journal.touch

        def failing_touch(self: Journal, cohort_id: str, amplitude_id: int, member: Any) -> None:
            if any(snapshot.user_id == marker for snapshot in member.history):
                raise Injected("injected into the journal")
            touch(self, cohort_id, amplitude_id, member)

        Journal.touch = failing_touch  # type: ignore[method-assign]
    elif stage == "forward":

        async def failing_forward(self: FaustOutbox, **_: Any) -> None:
            raise Injected("injected into forwarding")

        FaustOutbox.forward = failing_forward  # type: ignore[method-assign]
    elif stage == "sync":

        async def failing_submit(
            self: DestinationLanes, build: Callable[[], Any], written: Callable[[], None]
        ) -> None:
            raise Injected("injected into handing a sync over")

        DestinationLanes.submit = failing_submit  # type: ignore[method-assign]
    elif stage == "recovery":  # MARKER unused: the first delivery of each changelog
        queue_of = vars(TableManager)["changelog_queue"].fget  # record is lost, as a dropped fetch
        assert queue_of is not None

        def dropping_queue(self: TableManager) -> Any:
            queue = queue_of(self)
            if not hasattr(queue, "dropped"):
                queue.dropped = set()
                put = queue.put_nowait_enhanced

                def drop_first(*args: Any, **options: Any) -> Any:
                    event = args[0] if args else options["value"]
                    message = event.message
                    where = (message.topic, message.partition, message.offset)
                    if where not in queue.dropped:
                        queue.dropped.add(where)
                        return None
                    return put(*args, **options)

                queue.put_nowait_enhanced = drop_first
            return queue

        TableManager.changelog_queue = property(dropping_queue)  # type: ignore[method-assign,assignment]
    elif stage == "stop":  # MARKER unused: the stop blocks the event loop for good

        def stuck(self: SyncWriter) -> None:
            time.sleep(3600)

        SyncWriter.abandon = stuck  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown stage {stage!r}")


if __name__ == "__main__":
    inject(sys.argv[1], sys.argv[2])
    sys.exit(cli.main(sys.argv[3:]))
