"""The embedded file backend: one JSON document per key under ``$EKM_HOME/keys``.

Directory 0700, files 0600, every write atomic (temp file, fsync, rename, fsync dir), one
writer at a time through ``$EKM_HOME/.lock``. Files that group or others can read, symlinks,
oversized or non-regular files are refused: a keystore file is treated as hostile input. With
``home`` given, every file is opened relative to the home's descriptor without following a
link (:mod:`ekm.storage.paths`), so a ``keys`` link cannot lead reads or writes elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ekm.errors import StorageError
from ekm.storage.atomic import atomic_write, atomic_write_many, read_private
from ekm.storage.lock import FileLock
from ekm.storage.paths import check_private, ensure_private_dir, opened_dir, refuse_link

MAX_DOC_BYTES = 16 * 1024 * 1024
SUFFIX = ".json"


class FileDocumentStore:
    """Documents as files ``<dir>/<name>.json``."""

    kind = "file"

    def __init__(
        self,
        directory: Path,
        lock_path: Path,
        lock_timeout: float = 30.0,
        *,
        home: Path | None = None,
    ) -> None:
        self.directory = directory
        self.home = home
        self._lock = FileLock(lock_path, timeout=lock_timeout)
        self._dir_checked = False

    def describe(self) -> str:
        return str(self.directory)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def _entries(self) -> list[str]:
        """The directory's entries, listed through a descriptor that followed no link."""
        try:
            with opened_dir(self.directory, home=self.home) as dfd:
                return os.listdir(dfd)
        except FileNotFoundError:
            return []
        except OSError as exc:
            refuse_link(self.directory, exc)
            raise StorageError(f"cannot list {self.directory}: {exc.strerror}") from None

    def names(self) -> list[str]:
        entries = self._entries()
        if not entries:
            return []
        check_private(self.directory)
        return sorted(
            e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and not e.startswith(".")
        )

    def unexpected_files(self) -> list[str]:
        """Entries that are not key documents (for audits and the monitor)."""
        return sorted(e for e in self._entries() if not e.endswith(SUFFIX) or e.startswith("."))

    def read(self, name: str) -> tuple[bytes, Any] | None:
        path = self.path(name)
        if not self._dir_checked:
            check_private(self.directory)
            self._dir_checked = True
        try:
            data = read_private(path, limit=MAX_DOC_BYTES, home=self.home)
        except FileNotFoundError:
            return None
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        return data, None

    def write(self, name: str, data: bytes, token: Any) -> Any:
        ensure_private_dir(self.directory, home=self.home)
        atomic_write(self.path(name), data, home=self.home)
        return None

    def write_many(self, items: list[tuple[str, bytes]]) -> None:
        """Write several documents with one sync (bulk rotation); each stays atomic."""
        ensure_private_dir(self.directory, home=self.home)
        atomic_write_many([(self.path(name), data) for name, data in items], home=self.home)

    def delete(self, name: str, token: Any) -> None:
        path = self.path(name)
        try:
            with opened_dir(self.directory, home=self.home) as dfd:
                os.unlink(path.name, dir_fd=dfd)
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
