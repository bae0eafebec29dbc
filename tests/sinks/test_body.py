"""A body is made again at each reading, so a big one is never held whole; a small one is
kept after its first; size and digests are those of its bytes."""

from __future__ import annotations

import hashlib

from stream.sinks.body import KEEP_BELOW, Body, Chunks


class Counted:
    """Chunks of `size` bytes in total, counting how often they were made."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size, self.chunk, self.made = size, chunk, 0

    def __call__(self) -> Chunks:
        self.made += 1
        return (
            bytes([i % 251]) * min(self.chunk, self.size - i)
            for i in range(0, self.size, self.chunk)
        )

    def whole(self) -> bytes:
        return b"".join(self())


def test_size_and_digests_are_those_of_the_bytes() -> None:
    made = Counted(3 * KEEP_BELOW)
    data = made.whole()
    body = Body(made)
    assert (body.size, body.sha256, body.md5) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).digest(),
    )
    assert body.read() == data


def test_a_big_body_is_made_again_at_each_reading_and_not_kept() -> None:
    made = Counted(KEEP_BELOW + 1)
    body = Body(made)
    assert body.size == KEEP_BELOW + 1
    assert sum(len(chunk) for chunk in body.chunks()) == KEEP_BELOW + 1
    assert made.made == 2


def test_a_small_body_is_kept_after_its_first_reading() -> None:
    made = Counted(KEEP_BELOW)
    body = Body(made)
    assert body.size == KEEP_BELOW
    assert body.read() == Counted(KEEP_BELOW).whole()
    assert made.made == 1


def test_bodies_are_equal_by_their_bytes_and_match_stored_chunks() -> None:
    data = Counted(200_000).whole()
    assert Body(Counted(200_000)) == Body.of(data)
    assert Body.of(data) != Body.of(data[:-1] + b"!")
    assert Body.of(data).matches([data[:7], data[7:]])
    assert not Body.of(data).matches([data, b"x"])
    assert list(Body.of(b"").chunks()) == []


def test_a_repr_does_not_read_the_body() -> None:
    made = Counted(10)
    body = Body(made)
    assert repr(body) == "Body(not read yet)" and made.made == 0
    assert body.size == 10
    assert repr(body).startswith("Body(size=10, sha256=")
