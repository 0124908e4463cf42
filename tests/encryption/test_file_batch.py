"""Group commit of many files (ekm/ops/file_batch.py): outputs appear only after their audit
records are durable, and a failure of either side is what the log and the disk show."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from ekm.errors import AuditLogError, InvalidError
from ekm.manager import KeyManager
from ekm.ops.file_batch import FileBatch, same_path


def _records(home: Path) -> list[dict]:
    return [json.loads(x) for x in (home / "audit.log").read_text().splitlines()]


def _encrypt_three(mgr: KeyManager, tmp_path: Path) -> list[Path]:
    outs = []
    for i in range(3):
        out = tmp_path / f"o{i}.ekm"
        mgr.encrypt_file(io.BytesIO(b"data %d" % i), out, "session")
        outs.append(out)
    return outs


def _leftovers(tmp_path: Path) -> list[str]:
    return [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_nothing_appears_before_the_flush_and_records_come_first(home, tmp_path):
    mgr = KeyManager(home, env={})
    before = len(_records(home))
    with FileBatch(mgr, "encrypt").active() as group:
        outs = _encrypt_three(mgr, tmp_path)
        assert not any(o.exists() for o in outs)  # staged, not visible
        assert len(_records(home)) == before  # and not yet recorded
        assert group.flush() == {}
        assert all(o.exists() for o in outs)
        new = _records(home)[before:]
        assert [r["op"] for r in new] == ["encrypt"] * 3 and all(r["mac"] for r in new)
    assert _leftovers(tmp_path) == []
    with open(outs[1], "rb") as fh:
        assert mgr.decrypt_stream(fh, io.BytesIO()) == 6


def test_an_unwritable_log_at_the_flush_leaves_no_output(home, tmp_path, monkeypatch):
    mgr = KeyManager(home, env={})
    with FileBatch(mgr, "encrypt").active() as group:
        outs = _encrypt_three(mgr, tmp_path)

        def refuse(entries):  # type: ignore[no-untyped-def]
            raise AuditLogError("cannot write the audit log (disk full)")

        monkeypatch.setattr(group._audit.real, "append_many", refuse)
        with pytest.raises(AuditLogError):
            group.flush()
    assert not any(o.exists() for o in outs)
    assert _leftovers(tmp_path) == []


def test_an_output_created_meanwhile_fails_alone_with_its_own_record(home, tmp_path):
    mgr = KeyManager(home, env={})
    with FileBatch(mgr, "encrypt").active() as group:
        outs = _encrypt_three(mgr, tmp_path)
        outs[1].write_bytes(b"someone else's file")
        failed = group.flush()
    assert list(failed) == [same_path(outs[1])]
    assert isinstance(failed[same_path(outs[1])], InvalidError)
    assert outs[1].read_bytes() == b"someone else's file"  # never clobbered
    assert outs[0].exists() and outs[2].exists()
    last = _records(home)[-1]
    assert last["op"] == "encrypt" and last["result"] == "error" and last["path"].endswith("o1.ekm")
    assert _leftovers(tmp_path) == []


def test_leaving_without_a_flush_drops_staged_outputs(home, tmp_path):
    mgr = KeyManager(home, env={})
    with FileBatch(mgr, "encrypt").active():
        outs = _encrypt_three(mgr, tmp_path)
    assert not any(o.exists() for o in outs)
    assert _leftovers(tmp_path) == []
    mgr.encrypt_file(io.BytesIO(b"after"), tmp_path / "after.ekm", "session")  # usual path again
    assert (tmp_path / "after.ekm").exists() and _records(home)[-1]["op"] == "encrypt"


def test_a_decrypt_failure_inside_a_group_is_recorded_and_leaves_no_output(home, tmp_path):
    mgr = KeyManager(home, env={})
    good = tmp_path / "good.ekm"
    mgr.encrypt_file(io.BytesIO(os.urandom(300)), good, "session")
    bad = tmp_path / "bad.ekm"
    data = bytearray(good.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with FileBatch(mgr, "decrypt").active() as group:
        mgr.decrypt_file(str(good), tmp_path / "good.out")
        with pytest.raises(Exception, match="not authentic"):
            mgr.decrypt_file(str(bad), tmp_path / "bad.out")
        assert group.flush() == {}
    assert (tmp_path / "good.out").stat().st_size == 300
    assert not (tmp_path / "bad.out").exists()
    results = [r["result"] for r in _records(home)[-2:]]
    assert results == ["ok", "denied"]
