"""Permission checks and confinement: no path ekm touches in a home leads out of it.

Two rules, both ssh's:

* a file ekm reads or writes in its home is owned by the user running ekm and reachable by no
  one else (files 0600, directories 0700): :func:`check_private`, :func:`check_stat`;
* nothing in the home is a symbolic link ekm follows. A path inside the home is opened one
  component at a time, relative to the descriptor of the directory above it, each with
  ``O_NOFOLLOW`` (:func:`open_dir`). A ``backups`` or ``keys`` link planted to point at
  ``/etc`` is refused with one line (exit 4) before anything outside is read, written or
  chmod'ed. The home itself may be reached through links (the operator chose that path).

The directories above the home matter too: whoever can write a parent can rename the home
away and put their own in its place. :func:`unsafe_ancestors` lists parents that another user
can write without the sticky bit (``/tmp`` is world-writable but sticky: others cannot rename
what is ours there); :func:`check_ancestors` refuses a world-writable one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ekm.errors import StorageError, UnsafePermissionsError

FILE_MODE = 0o600
DIR_MODE = 0o700
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


def check_stat(path: Path | str, st: os.stat_result) -> None:
    """Refuse what group or others can access, or what another user owns (exit 4)."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        want = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
        raise UnsafePermissionsError(
            f"{path} has mode {mode:04o}; group or others can access it (run: chmod {want} {path})"
        )
    if st.st_uid != os.geteuid():
        raise UnsafePermissionsError(
            f"{path} is owned by uid {st.st_uid}, not by the user running ekm ({os.geteuid()})"
        )


def check_private(path: Path, *, is_dir: bool | None = None) -> None:
    """Refuse a link, or a file or directory that group/others can access or another user owns."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePermissionsError(f"{path} is a symbolic link; ekm refuses to follow it")
    check_stat(path, st)


def refuse_link(path: Path | str, exc: OSError) -> None:
    """Turn ``ELOOP``/``ENOTDIR`` from an ``O_NOFOLLOW`` open into the one-line refusal."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        raise UnsafePermissionsError(
            f"{path} is a symbolic link (or not a directory); ekm refuses to follow it"
        ) from None


def inside(home: Path | None, path: Path) -> tuple[str, ...] | None:
    """The components of ``path`` below ``home``, or None when ``path`` is not inside it.

    Purely lexical (no link is resolved): the caller then opens each component itself.
    ``..`` anywhere makes the answer None, so it cannot climb out.
    """
    if home is None:
        return None
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(home))
    except ValueError:
        return None
    parts = rel.parts
    if any(p in ("..", "") for p in parts):
        return None
    return parts


def open_dir(path: Path, *, home: Path | None = None, create: bool = False) -> int:
    """A directory descriptor for ``path``; inside ``home`` no component may be a link.

    Below ``home`` each component is opened with ``O_NOFOLLOW`` relative to its parent's
    descriptor and must be owned by us with no group/other access (a missing one is created
    0700 when ``create``; one we own with a wider mode is tightened through its descriptor,
    never through a path a link could redirect). Outside ``home`` (an operator's ``-o`` path,
    an absolute backup dir) the path is opened as given. The caller closes the descriptor.
    """
    parts = inside(home, path)
    if parts is None:
        if create:
            path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    assert home is not None
    if create:
        home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    where = home
    try:
        for part in parts:
            where = where / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                refuse_link(where, exc)
                raise
            os.close(fd)
            fd = child
            _own_private_dir(where, fd, tighten=create)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _own_private_dir(where: Path, fd: int, *, tighten: bool) -> None:
    st = os.fstat(fd)
    if tighten and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.fchmod(fd, DIR_MODE)
        st = os.fstat(fd)
    check_stat(where, st)


@contextlib.contextmanager
def opened_dir(path: Path, *, home: Path | None = None, create: bool = False) -> Iterator[int]:
    """:func:`open_dir` as a context manager that closes the descriptor."""
    fd = open_dir(path, home=home, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def ensure_private_dir(path: Path, *, home: Path | None = None) -> None:
    """Create ``path`` (0700) or tighten one we own; inside ``home`` without following links.

    Without ``home`` the old rule holds for the path itself: a symbolic link is refused, not
    followed and chmod'ed.
    """
    try:
        if inside(home, path) is not None:
            os.close(open_dir(path, home=home, create=True))
            return
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        refuse_link(path, exc)
        raise StorageError(f"cannot create the directory {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != DIR_MODE and st.st_uid == os.geteuid():
            os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)


def unsafe_ancestors(home: Path) -> list[tuple[Path, str]]:
    """Directories at or above ``home`` through which another user could swap its files.

    A directory that group or others can write, without the sticky bit, lets them rename
    entries in it; so does one owned by another (non-root) user. Returns (directory, why) for
    the directories above the home; the home itself is judged by :func:`check_private`.
    """
    out: list[tuple[Path, str]] = []
    try:
        real = Path(os.path.realpath(home))
    except OSError:
        return out
    me = os.geteuid()
    for directory in real.parents:
        try:
            st = os.stat(directory)
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        sticky = bool(mode & stat.S_ISVTX)
        if mode & 0o002 and not sticky:
            out.append((directory, f"world-writable ({mode:04o}) without the sticky bit"))
        elif mode & 0o020 and not sticky:
            out.append((directory, f"group-writable ({mode:04o}) without the sticky bit"))
        elif st.st_uid not in (0, me):
            out.append((directory, f"owned by uid {st.st_uid}, who can replace what is in it"))
    return out


def check_ancestors(home: Path) -> None:
    """Refuse a home below a world-writable, non-sticky directory (anyone could swap it)."""
    for directory, why in unsafe_ancestors(home):
        if why.startswith("world-writable"):
            raise UnsafePermissionsError(
                f"{directory} is {why}: any user could replace the ekm home {home} "
                f"(run: chmod o-w {directory}, or move the home)"
            )
