"""`without_pandas`: pyarrow converts without importing pandas inside the block, and pandas
imports again after it. Each case runs in a fresh interpreter, since this one may have
imported pandas already (the format tests read files back with it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pandas")  # without it installed there is nothing to hide


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pyarrow_converts_without_importing_pandas_inside_the_block() -> None:
    out = _run(
        """
        import sys
        import numpy as np
        import pyarrow as pa
        from stream.ops.imports import without_pandas

        with without_pandas():
            made = [pa.array([b"x", None], pa.binary()), pa.array(np.arange(3)), pa.array([1])]
            print("pandas" in sys.modules, [m.to_pylist() for m in made])
        import pandas
        print("pandas" in sys.modules, pa.table({"a": [1]}).to_pandas()["a"].tolist())
        """
    )
    assert out.splitlines() == ["False [[b'x', None], [0, 1, 2], [1]]", "True [1]"]


def test_without_the_block_pyarrow_imports_pandas() -> None:
    """The counter-case: what the block saves is real."""
    out = _run(
        """
        import sys
        import pyarrow as pa

        pa.array([1])
        print("pandas" in sys.modules)
        """
    )
    assert out == "True"


def test_pandas_already_imported_stays_whole_inside_the_block() -> None:
    """Hiding pandas once it is imported would save nothing and could break its users: a
    submodule that `import pandas` does not load still imports in the block."""
    out = _run(
        """
        import sys
        import pandas
        from stream.ops.imports import without_pandas

        assert "pandas.io.clipboard" not in sys.modules
        with without_pandas():
            import pandas.io.clipboard
            print(pandas.io.clipboard.__name__)
        """
    )
    assert out == "pandas.io.clipboard"
