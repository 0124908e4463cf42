"""Old import path of the storage primitives; they live in :mod:`ekm.storage` now.

Kept so existing imports (``from ekm.fsutil import atomic_write``) go on working: atomic
writes and careful reads are in :mod:`ekm.storage.atomic`, permission checks and confinement
in :mod:`ekm.storage.paths`, the lock in :mod:`ekm.storage.lock`.
"""

from __future__ import annotations

from ekm.storage.atomic import (
    atomic_write,
    atomic_write_many,
    fsync_dir,
    open_regular,
    read_private,
)
from ekm.storage.lock import FileLock, private_umask
from ekm.storage.paths import (
    DIR_MODE,
    FILE_MODE,
    check_private,
    check_stat,
    ensure_private_dir,
)

_check_stat = check_stat

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "FileLock",
    "atomic_write",
    "atomic_write_many",
    "check_private",
    "check_stat",
    "ensure_private_dir",
    "fsync_dir",
    "open_regular",
    "private_umask",
    "read_private",
]
