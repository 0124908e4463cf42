"""The embedded file backend: one JSON document per key under ``$EKM_HOME/keys``.

Directory 0700, files 0600, every write atomic (temp file, fsync, rename, fsync dir), one
writer at a time through ``$EKM_HOME/.lock``. Files that group or others can read, symlinks,
oversized or non-regular files are refused: a keystore file is treated as hostile input.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ekm.errors import StorageError
from ekm.fsutil import (
    FileLock,
    atomic_write,
    atomic_write_many,
    check_private,
    ensure_private_dir,
    read_private,
)

MAX_DOC_BYTES = 16 * 1024 * 1024
SUFFIX = ".json"


class FileDocumentStore:
    """Documents as files ``<dir>/<name>.json``."""

    kind = "file"

    def __init__(self, directory: Path, lock_path: Path, lock_timeout: float = 30.0) -> None:
        self.directory = directory
        self._lock = FileLock(lock_path, timeout=lock_timeout)
        self._dir_checked = False
        self._swept = False

    def describe(self) -> str:
        return str(self.directory)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        check_private(self.directory)
        return sorted(
            e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and not e.startswith(".")
        )

    def unexpected_files(self) -> list[str]:
        """Entries that are not key documents (for audits and the monitor)."""
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if not e.endswith(SUFFIX) or e.startswith("."))

    def read(self, name: str) -> tuple[bytes, Any] | None:
        path = self.path(name)
        if not self._dir_checked:
            check_private(self.directory)
            self._dir_checked = True
        try:
            data = read_private(path, limit=MAX_DOC_BYTES)
        except FileNotFoundError:
            return None
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        return data, None

    def _sweep_stale_tmp(self) -> None:
        """Remove temporary files left by ekm processes that died mid-write (SIGKILL).

        They are never read (a write is only visible after its rename), but they would pile
        up and the monitor reports them as unexpected files. Only files whose writer's pid
        is gone are removed, once per process.
        """
        if self._swept:
            return
        self._swept = True
        for entry in self.unexpected_files():
            parts = entry.split(".")
            if not (entry.startswith(".") and entry.endswith(".tmp") and len(parts) >= 5):
                continue
            pid = parts[-3]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.directory / entry)

    def write(self, name: str, data: bytes, token: Any) -> Any:
        ensure_private_dir(self.directory)
        self._sweep_stale_tmp()
        atomic_write(self.path(name), data)
        return None

    def write_many(self, items: list[tuple[str, bytes]]) -> None:
        """Write several documents with one sync (bulk rotation); each stays atomic."""
        ensure_private_dir(self.directory)
        self._sweep_stale_tmp()
        atomic_write_many([(self.path(name), data) for name, data in items])

    def delete(self, name: str, token: Any) -> None:
        path = self.path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot remove {path}: {exc.strerror}") from None

    def lock(self) -> FileLock:
        return self._lock

    def check_permissions(self) -> None:
        check_private(self.directory)
        for name in self.names():
            check_private(self.path(name))


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 probes without signalling)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
