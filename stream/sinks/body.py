"""`Body`: one file's bytes as a sink takes them, made again in chunks each time they are
read, so that a big file is never in memory whole.

A body is deterministic: every reading gives the same bytes (cohort-sync's files are a pure
function of the state they are built from). Its size and digests take one reading, made on
first use; a small body keeps its bytes from that reading instead of making them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

__all__ = ["Body", "Chunks", "KEEP_BELOW"]

Chunks = Iterable[bytes | memoryview]

#: A body up to this size keeps its bytes once read (digests, then the put, read it again).
KEEP_BELOW = 1024 * 1024


class Body:
    """`Body(make)`: `make()` returns the file's chunks anew each time; `Body.of(data)` for
    bytes already in memory."""

    __slots__ = ("_make", "_kept", "_size", "_sha256", "_md5")

    def __init__(self, make: Callable[[], Chunks]) -> None:
        self._make = make
        self._kept: bytes | None = None
        self._size: int | None = None
        self._sha256 = ""
        self._md5 = b""

    @classmethod
    def of(cls, data: bytes) -> Body:
        body = cls(lambda: (data,))
        body._kept = data
        return body

    def chunks(self) -> Iterator[memoryview]:
        """The bytes in order, in chunks of any size (none empty)."""
        if self._kept is not None:
            if self._kept:
                yield memoryview(self._kept)
            return
        for chunk in self._make():
            if len(chunk):
                yield memoryview(chunk)

    def read(self) -> bytes:
        """The whole bytes (small files, tests)."""
        return self._kept if self._kept is not None else b"".join(self.chunks())

    @property
    def size(self) -> int:
        if self._size is None:
            self._measure()
        assert self._size is not None
        return self._size

    @property
    def sha256(self) -> str:
        """The SHA-256 of the bytes, in hex (the manifest's)."""
        if self._size is None:
            self._measure()
        return self._sha256

    @property
    def md5(self) -> bytes:
        """The MD5 digest of the bytes (S3's `Content-MD5` and single-part ETag)."""
        if self._size is None:
            self._measure()
        return self._md5

    def matches(self, stored: Iterable[bytes]) -> bool:
        """Whether `stored`, end to end, are these bytes (compared by size and SHA-256, so
        neither side is held whole)."""
        sha256, size = hashlib.sha256(), 0
        for chunk in stored:
            sha256.update(chunk)
            size += len(chunk)
        return size == self.size and sha256.hexdigest() == self.sha256

    def _measure(self) -> None:
        sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size, small = 0, bytearray()
        for chunk in self.chunks():
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if size <= KEEP_BELOW:
                small += chunk
        if size <= KEEP_BELOW and self._kept is None:
            self._kept = bytes(small)
        self._size, self._sha256, self._md5 = size, sha256.hexdigest(), md5.digest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Body):
            return NotImplemented
        return self.size == other.size and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash((self.size, self.sha256))

    def __repr__(self) -> str:  # never measures: a repr must not encode a big file
        if self._size is None:
            return "Body(not read yet)"
        return f"Body(size={self._size}, sha256={self._sha256[:12]}…)"
