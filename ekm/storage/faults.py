"""A fault-injection seam in ekm's write path, used only by the test suite.

``EKM_FAULT_INJECT`` names write steps that fail, so a test can run the real ``ekm`` command
against a disk that fills up or fails, without root and without a special file system::

    EKM_FAULT_INJECT="audit.write=ENOSPC"      every write of audit records fails
    EKM_FAULT_INJECT="audit.write=short"       half of the bytes land, then ENOSPC
    EKM_FAULT_INJECT="audit.fsync=EIO@2"       only the second fsync of the log fails
    EKM_FAULT_INJECT="file.write=ENOSPC@3+"    the third write of a home file and every later one
    EKM_FAULT_INJECT="*.fsync=EIO"             every fsync of every site fails

Sites: ``audit.write``, ``audit.fsync`` (the log), ``audit.head`` (the head file),
``file.write``, ``file.fsync``, ``file.rename`` (any other file ekm writes atomically: key
documents, the API key table, master.json, ekm.toml, backups) and ``dir.fsync`` (the directory
after a rename). A rule's site may be ``*.STEP`` to match that step at every site. ``KIND`` is
an errno name (``ENOSPC``, ``EIO``, ``EDQUOT``, ...) or ``short``. ``@N`` fails only the Nth
hit of that rule, ``@N+`` the Nth and every later one; without it every hit fails.

Faults only make writes fail, which anyone who can set ekm's environment can cause anyway (a
full disk, ``ulimit -f``); they never make a check pass. Unset (the normal case), each step
costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os

ENV = "EKM_FAULT_INJECT"
_hits: dict[str, int] = {}


def _rules() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    rules: dict[str, str] = {}
    for part in spec.split(","):
        site, _, what = part.strip().partition("=")
        if site and what:
            rules[site] = what
    return rules


def check(site: str) -> str | None:
    """Raise the OSError configured for ``site`` (or return ``"short"``) on the chosen hit."""
    if ENV not in os.environ:
        return None
    rules = _rules()
    rule = site if site in rules else "*." + site.rpartition(".")[2]
    what = rules.get(rule)
    if what is None:
        return None
    kind, _, nth = what.partition("@")
    _hits[rule] = hit = _hits.get(rule, 0) + 1
    if nth:
        onwards = nth.endswith("+")
        first = int(nth.rstrip("+"))
        if hit < first or (hit > first and not onwards):
            return None
    if kind == "short":
        return "short"
    code = getattr(errno, kind.upper(), errno.EIO)
    raise OSError(code, os.strerror(code))


def write_all(fd: int, data: bytes | memoryview, site: str) -> None:
    """Write all of ``data`` or raise OSError: a short write is an error, never ignored.

    ``os.write`` may write fewer bytes than asked (a signal, a quota, a disk filling up); the
    loop goes on from where it stopped, and a write that makes no progress is an error.
    """
    view = memoryview(data)
    if check(site) == "short":
        os.write(fd, view[: max(1, len(view) // 2)])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        view = view[written:]


def fsync(fd: int, site: str) -> None:
    """fsync ``fd``; an error (EIO, ENOSPC on delayed allocation) is raised, never ignored."""
    check(site)
    os.fsync(fd)
