"""`file://` destinations: the same key layout on a local file system.

Each file is written to a temporary sibling and fsynced, then hard-linked to its name (which
fails if the name exists: files are never replaced) or, with `overwrite`, renamed over it.
A reader never sees a half-written file. Files get the mode a plain `open` would give them
(0666 less the process umask), not `mkstemp`'s 0600, so a loader running as another user
can read them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stream.errors import PermanentSinkError, TransientSinkError
from stream.sinks import Body, Inspection, Put

__all__ = ["LocalSink"]


class LocalSink:
    def __init__(self, root: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.root = Path(root)
        self.overwrite = overwrite

    def put(self, key: str, body: Body) -> Put:
        """Written chunk by chunk: memory holds one chunk of the body at a time."""
        target = self._resolve(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                os.fchmod(fd, _file_mode())
                with os.fdopen(fd, "wb") as handle:
                    for chunk in body.chunks():
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                if self.overwrite:
                    os.replace(temporary, target)
                    return Put.WRITTEN
                try:
                    os.link(temporary, target)
                except FileExistsError:
                    return Put.UNCHANGED if _holds(target, body) else Put.KEPT
                return Put.WRITTEN
            finally:
                Path(temporary).unlink(missing_ok=True)
        except PermissionError as exc:
            raise PermanentSinkError(f"cannot write {target}: {exc.strerror}") from exc
        except OSError as exc:
            raise TransientSinkError(f"cannot write {target}: {exc.strerror}") from exc

    def probe(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentSinkError(f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise PermanentSinkError(f"{self.root} is not writable")

    def inspect(self) -> Inspection:
        if self.root.is_dir():
            if os.access(self.root, os.W_OK):
                return Inspection(facts=[f"folder {self.root} exists, writable"])
            return Inspection(problems=[f"{self.root} is not writable"])
        if self.root.exists():
            return Inspection(problems=[f"{self.root} is not a folder"])
        parent = next(p for p in self.root.parents if p.exists())
        problem = _creatable(self.root)
        if problem is None:
            return Inspection(facts=[f"folder {self.root} can be created (in {parent})"])
        return Inspection(problems=[f"cannot create {self.root}: {problem}"])

    def location(self, key: str) -> str:
        """`file://` and the path as it is named on disk: not percent-encoded (`T01:00`, not
        `T01%3A00`), since people read it in logs and paste it into shells."""
        return f"file://{self._resolve(key)}"

    def _resolve(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise PermanentSinkError(f"key {key!r} would escape {self.root}")
        return target


def _holds(target: Path, body: Body) -> bool:
    if target.stat().st_size != body.size:
        return False
    with target.open("rb") as stored:
        return body.matches(iter(lambda: stored.read(1024 * 1024), b""))


def _creatable(folder: Path) -> str | None:
    """Why `folder` cannot be created (None: it can). Permissions alone do not tell (root
    may "write" to /proc), so the folders are made and those made are removed again: no
    file is written."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    for made in missing:  # deepest first
        made.rmdir()
    return None


def _file_mode() -> int:
    """0666 less the umask, read without changing it (`os.umask` sets it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (not Linux): read it by setting it back at once
    os.umask(mask)
    return 0o666 & ~mask
