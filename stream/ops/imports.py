"""What a cohort-sync process keeps itself from importing."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["without_pandas"]


@contextmanager
def without_pandas() -> Iterator[None]:
    """Run the block as if pandas were not installed (when it is not imported already).

    pyarrow asks whether a value is a pandas object before it converts it, and its C++
    conversion of Python values asks for pandas' own types; when pandas is installed,
    the first such question imports it (apache/arrow#34994): 0.3-0.5 s of a worker's
    restart or a replay, spent holding the GIL. cohort-sync never hands pyarrow a pandas
    object, so a worker or a replay runs with pandas hidden: each question fails at once
    and pyarrow carries on without it, with the same results. Forked processes inherit
    the hiding; the block's end takes it back, so pandas imports again after it."""
    if "pandas" in sys.modules:  # already paid for: hiding it would change nothing
        yield
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _NoPandas(importlib.abc.MetaPathFinder):
    """Finds pandas and its submodules missing."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None
