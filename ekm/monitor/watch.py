"""Watch the ekm home for changes so a chmod or a tampered file triggers an immediate check.

inotify (through inotify_simple, imported only when a watcher is built) reports attribute
changes, writes, creations, deletions and moves on the home and every directory below it. Where
inotify is unavailable (not Linux, no inotify_simple, watch limit reached) the watcher polls:
it compares ``lstat`` results (mode, owner, size, inode, mtime and ctime, so chmod and chown show
up) between passes. Either way the caller just calls ``wait(timeout)``.

The watcher only says *what changed*; deciding whether a change is suspicious is the checks'
job, since ekm's own rotations write to the same files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from ekm.errors import NotFoundError

log = logging.getLogger("ekm.monitor.watch")

MAX_WATCHES = 4096  # a home with more directories than this is hostile or a mistake: poll it
COALESCE = 0.05  # seconds to gather the rest of a burst (a rotation writes several files)

_Stat = tuple[int, int, int, int, int, int, int]


def _fingerprint(st: os.stat_result) -> _Stat:
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


class HomeWatcher:
    """``wait(timeout)`` returns the paths that changed under ``path`` (empty on timeout)."""

    def __init__(
        self, path: Path, *, use_inotify: bool | None = None, poll_interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotFoundError(f"cannot watch {self.path}: it is not a directory (run ekm deploy)")
        self.poll_interval = poll_interval
        self._inotify: Any = None
        self._wd: dict[int, Path] = {}
        self._snapshot: dict[Path, _Stat] = {}
        if use_inotify is not False:
            try:
                self._start_inotify()
            except (ImportError, OSError) as exc:
                if use_inotify:
                    raise NotFoundError(
                        f"inotify is unavailable here ({type(exc).__name__}); "
                        "use the polling watcher"
                    ) from None
                log.info("inotify unavailable (%s); polling %s", type(exc).__name__, self.path)
                self._close_inotify()
        if self._inotify is None:
            self._snapshot = self._scan()

    @property
    def mode(self) -> str:
        """``inotify`` or ``poll``."""
        return "inotify" if self._inotify is not None else "poll"

    # -- inotify ------------------------------------------------------------------------------

    def _mask(self) -> int:
        from inotify_simple import flags

        return (
            flags.ATTRIB
            | flags.MODIFY
            | flags.CLOSE_WRITE
            | flags.CREATE
            | flags.DELETE
            | flags.DELETE_SELF
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.MOVE_SELF
            | flags.DONT_FOLLOW
            | flags.ONLYDIR
        )

    def _start_inotify(self) -> None:
        from inotify_simple import INotify

        self._inotify = INotify()
        self._add_tree(self.path)

    def _add_tree(self, top: Path) -> None:
        for directory, dirs, _files in os.walk(top, followlinks=False):
            self._add_watch(Path(directory))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]

    def _add_watch(self, directory: Path) -> None:
        if len(self._wd) >= MAX_WATCHES:
            raise OSError(f"more than {MAX_WATCHES} directories")
        try:
            wd = self._inotify.add_watch(os.fspath(directory), self._mask())
        except FileNotFoundError:
            return  # vanished between the walk and the watch: its parent reported the delete
        self._wd[wd] = directory

    def _close_inotify(self) -> None:
        if self._inotify is not None:
            with contextlib.suppress(OSError):
                self._inotify.close()
        self._inotify = None
        self._wd = {}

    def _wait_inotify(self, timeout: float | None) -> list[Path]:
        from inotify_simple import flags

        changed: set[Path] = set()
        ms = None if timeout is None else max(0, int(timeout * 1000))
        events = self._inotify.read(timeout=ms)
        if events:
            events += self._inotify.read(timeout=int(COALESCE * 1000))
        for ev in events:
            if ev.mask & flags.Q_OVERFLOW:
                changed.add(self.path)  # too many to list: the caller re-checks everything
                continue
            base = self._wd.get(ev.wd)
            if base is None:
                continue
            target = base / ev.name if ev.name else base
            changed.add(target)
            if ev.mask & flags.IGNORED:
                self._wd.pop(ev.wd, None)
            elif ev.mask & flags.ISDIR and ev.mask & (flags.CREATE | flags.MOVED_TO):
                try:
                    self._add_tree(target)
                except OSError:
                    log.warning("too many directories under %s; switching to polling", self.path)
                    self._close_inotify()
                    self._snapshot = self._scan()
                    break
        return sorted(changed)

    # -- polling ------------------------------------------------------------------------------

    def _scan(self) -> dict[Path, _Stat]:
        result: dict[Path, _Stat] = {}
        with contextlib.suppress(OSError):
            result[self.path] = _fingerprint(os.lstat(self.path))
        for directory, dirs, files in os.walk(self.path, followlinks=False):
            for name in (*dirs, *files):
                p = Path(directory) / name
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                result[p] = _fingerprint(st)
            dirs[:] = [
                d for d in dirs if stat.S_ISDIR(result.get(Path(directory) / d, (0,) * 7)[0])
            ]
            if len(result) > 100_000:
                log.warning("more than 100000 entries under %s; watching stops there", self.path)
                break
        return result

    def _diff(self) -> list[Path]:
        new = self._scan()
        old, self._snapshot = self._snapshot, new
        keys = old.keys() | new.keys()
        return sorted(p for p in keys if old.get(p) != new.get(p))

    def _wait_poll(self, timeout: float | None) -> list[Path]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = self._diff()
            if changed:
                return changed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            time.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    # -- public -------------------------------------------------------------------------------

    def wait(self, timeout: float | None) -> list[Path]:
        """Block up to ``timeout`` seconds (None: forever); return the changed paths, sorted."""
        if self._inotify is not None:
            return self._wait_inotify(timeout)
        return self._wait_poll(timeout)

    def close(self) -> None:
        self._close_inotify()

    def __enter__(self) -> HomeWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
