"""Review fixes: files swapped for FIFOs, links or giant lines, and key names that climb out
of ``keys/``, are refused with an EkmError instead of hanging, following or trusting them.

The FIFO tests run the reader in a thread and join it with a generous guard: before the fix
``open`` blocked forever waiting for a writer. The guard only keeps a regression from hanging
the suite; afterwards the FIFO is opened for writing so a stuck reader is released.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ekm.errors import NotFoundError, StorageError, UnsafePermissionsError
from ekm.fsutil import open_regular, read_private
from ekm.manager import KeyManager

GUARD = 30.0  # seconds; a hang guard, not a timing assertion


def _call_guarded(fifo: Path, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread; if it is stuck in open() on ``fifo``, release it and fail."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(GUARD)
    stuck = t.is_alive()
    if stuck:  # release the reader: open the write end, then close it (EOF)
        with contextlib.suppress(OSError):
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        t.join(GUARD)
    assert not stuck, "the reader blocked opening a FIFO"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _fifo(path: Path) -> Path:
    os.mkfifo(path, 0o600)
    return path


def test_read_private_refuses_a_fifo_instead_of_hanging(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "master.json")
    with pytest.raises(StorageError, match="is not a regular file"):
        _call_guarded(fifo, lambda: read_private(fifo))


def test_open_regular_refuses_fifo_link_and_missing(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "fifo")
    with pytest.raises(StorageError, match="is not a regular file"):
        _call_guarded(fifo, lambda: open_regular(fifo))
    target = tmp_path / "target"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafePermissionsError, match="symbolic link; ekm refuses to follow"):
        open_regular(tmp_path / "link")
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")
    with open_regular(target) as fh:
        assert fh.read() == b"x"


def test_cli_master_json_fifo_is_an_error_not_a_hang(home: Path, run: Callable) -> None:
    (home / "master.json").unlink()
    fifo = _fifo(home / "master.json")
    res = _call_guarded(fifo, lambda: run("status"))
    res.expect_error(4, "master.json is not a regular file")


# -- the audit log ------------------------------------------------------------------------


def _unlocked(home: Path) -> KeyManager:
    mgr = KeyManager(home, env={})
    mgr.unlock()
    return mgr


def test_verify_reports_a_fifo_head_instead_of_hanging(home: Path) -> None:
    head = home / "audit.log.head"
    head.unlink()
    _fifo(head)
    mgr = _unlocked(home)
    res = _call_guarded(head, mgr.audit_log.verify)
    assert not res.ok
    assert res.first_bad == "audit.log.head is unreadable"


def test_append_refuses_a_fifo_head_with_audit_log_error(home: Path) -> None:
    head = home / "audit.log.head"
    head.unlink()
    _fifo(head)
    mgr = _unlocked(home)
    from ekm.errors import AuditLogError

    with pytest.raises(AuditLogError, match=r"audit\.log\.head is unreadable"):
        _call_guarded(head, lambda: mgr.audit_log.append("review.test"))


def test_verify_does_not_follow_a_symlinked_rotated_log(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_bytes((home / "audit.log").read_bytes())
    os.chmod(elsewhere, 0o600)
    (home / "audit.log.1").symlink_to(elsewhere)
    res = _unlocked(home).audit_log.verify()
    assert not res.ok
    assert res.first_bad == "audit.log.1: " + (
        f"{home / 'audit.log.1'} is a symbolic link; ekm refuses to follow it"
    )


def test_verify_reports_an_overlong_line_without_loading_it(home: Path) -> None:
    log = home / "audit.log"
    good = log.read_bytes()
    with open(log, "ab") as fh:
        fh.write(b"A" * (3 * 1024 * 1024) + b"\n")
    res = _unlocked(home).audit_log.verify()
    assert not res.ok
    n = good.count(b"\n") + 1
    assert (
        res.first_bad
        == f"audit.log line {n}: record longer than 1048576 bytes (damaged or planted)"
    )


def test_records_skip_an_overlong_line_and_keep_the_rest(home: Path) -> None:
    log = home / "audit.log"
    before = list(KeyManager(home, env={}).audit_log.records())
    last = log.read_bytes().splitlines(keepends=True)[-1]
    with open(log, "ab") as fh:
        fh.write(b"{" * (2 * 1024 * 1024) + b"\n" + last)
    after = list(KeyManager(home, env={}).audit_log.records())
    assert after == [*before, json.loads(last)]


# -- key names ----------------------------------------------------------------------------


def _plant_document(home: Path) -> Path:
    """A file outside keys/ that a traversing name would reach (keys/../planted.json)."""
    src = next((home / "keys").glob("*.json"))
    planted = home / "planted.json"
    planted.write_bytes(src.read_bytes())
    os.chmod(planted, 0o600)
    return planted


@pytest.mark.parametrize("name", ["../planted", "../../planted", ".hidden", "a/b", "a\\b", "x\x00"])
def test_keystore_refuses_names_outside_the_keys_directory(home: Path, name: str) -> None:
    _plant_document(home)
    mgr = KeyManager(home, env={})
    with pytest.raises(NotFoundError, match="key names are 1-64 characters"):
        mgr.keystore.load(name)


def test_cli_traversing_key_name_is_not_found(home: Path, run: Callable) -> None:
    _plant_document(home)
    line = run("keys", "show", "../planted").expect_error(3, "no key named '../planted'")
    assert "planted.json" not in line


def test_ensure_writable_refuses_a_fifo_log_instead_of_hanging(home: Path) -> None:
    from ekm.errors import AuditLogError

    log = home / "audit.log"
    log.unlink()
    _fifo(log)
    mgr = _unlocked(home)
    with pytest.raises(AuditLogError, match=r"cannot write the audit log .*refused"):
        _call_guarded(log, mgr.audit_log.ensure_writable)
    with pytest.raises(AuditLogError, match=r"cannot write the audit log .*refused"):
        _call_guarded(log, lambda: mgr.get_key("jwt_signing"))


def test_append_refuses_a_fifo_log_with_a_clear_message(home: Path) -> None:
    from ekm.errors import AuditLogError

    log = home / "audit.log"
    log.unlink()
    _fifo(log)
    reader = os.open(log, os.O_RDONLY | os.O_NONBLOCK)  # a reader draining the "log"
    try:
        mgr = _unlocked(home)
        with pytest.raises(AuditLogError) as err:
            mgr.audit_log.ensure_writable()
        assert err.value.message == (
            f"{log} is not a regular file; the operation was refused (move it aside and "
            "restore the audit log, then retry)"
        )
        with pytest.raises(AuditLogError, match="is not a regular file"):
            mgr.audit_log.append("review.test")
        assert os.read(reader, 4096) == b""  # nothing reached the pipe
    finally:
        os.close(reader)
