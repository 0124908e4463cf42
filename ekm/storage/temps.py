"""Temporary files of atomic writes: the ones this process holds, and those dead ones left.

A SIGTERM/SIGHUP handler (ekm/cli/main.py) removes the live ones even where the exception it
raises could be swallowed (a weakref callback, a ``__del__``); :func:`sweep_stale_temp` removes,
at start, those whose writer died (SIGKILL, power cut, OOM kill), so the CLI can report them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

_LIVE_TEMPS: set[str] = set()


def register_temp(path: os.PathLike[str] | str) -> None:
    _LIVE_TEMPS.add(os.fspath(path))


def unregister_temp(path: os.PathLike[str] | str) -> None:
    _LIVE_TEMPS.discard(os.fspath(path))


def remove_live_temps() -> None:
    """Unlink every temporary file this process has open for an atomic write (signal path)."""
    for path in list(_LIVE_TEMPS):
        with contextlib.suppress(OSError):
            os.unlink(path)
        _LIVE_TEMPS.discard(path)


def pid_alive(pid: int) -> bool:
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


def sweep_stale_temp(directory: Path) -> list[str]:
    """Remove ``.NAME.PID.RAND.tmp`` files in ``directory`` whose writer ``PID`` is dead.

    They are never read, but may hold plaintext or gigabytes. Files of a live process (a
    concurrent ekm) are left alone, as are links and anything not a regular file. Returns the
    names removed.
    """
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        parts = entry.split(".")
        if not (entry.startswith(".") and entry.endswith(".tmp") and len(parts) >= 5):
            continue
        pid = parts[-3]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        path = directory / entry
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(entry)
    return sorted(removed)
