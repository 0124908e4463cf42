"""Several files in one ``ekm encrypt/decrypt/rewrap/sign/verify`` call (ekm/cli/batch.py).

Per-file report lines, ``-`` only once, ``--out-dir``, going on after a failure, ``--fail-fast``,
one audit record per file and a JSON entry per file, all through the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest


def _records(home: Path, op: str) -> list[dict]:
    lines = (home / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("op") == op]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    src = tmp_path / "in"
    src.mkdir()
    out = []
    for i in range(5):
        p = src / f"f{i}.txt"
        p.write_bytes(os.urandom(100 + i))
        out.append(p)
    return out


def _names(paths: list[Path]) -> list[str]:
    return [str(p) for p in paths]


def test_encrypt_then_decrypt_many_beside_their_inputs(run, files, home, tmp_path):
    before = len(_records(home, "encrypt"))
    res = run("encrypt", "--key", "session", *_names(files)).expect_ok()
    for p in files:
        assert f"encrypted {p} -> {p}.ekm" in res.stderr
    assert res.stderr.rstrip().endswith("encrypted 5 of 5 files")
    assert len(_records(home, "encrypt")) - before == 5
    plain = {p: p.read_bytes() for p in files}
    for p in files:
        p.unlink()
    res = run("decrypt", *[f"{p}.ekm" for p in files]).expect_ok()
    assert all(p.read_bytes() == plain[p] for p in files)
    assert len([r for r in _records(home, "decrypt") if r["result"] == "ok"]) == 5


def test_out_dir_and_json_entry_per_file(run, files, tmp_path):
    out = tmp_path / "sealed"
    out.mkdir()
    res = run("--json", "encrypt", "--key", "session", "--out-dir", str(out), *_names(files))
    doc = json.loads(res.expect_ok().stdout)
    assert doc["ok"] == 5 and doc["failed"] == 0 and doc["skipped"] == 0
    assert [e["input"] for e in doc["files"]] == _names(files)
    for entry, p in zip(doc["files"], files, strict=True):
        want = {"input": str(p), "output": str(out / f"{p.name}.ekm"), "ok": True,
                "bytes": p.stat().st_size, "key": "session", "recipients": None}  # fmt: skip
        assert entry == want
        assert not Path(f"{p}.ekm").exists()
    back = tmp_path / "back"
    back.mkdir()
    doc = json.loads(
        run("--json", "decrypt", "--out-dir", str(back), *sorted(map(str, out.iterdir())))
        .expect_ok().stdout
    )  # fmt: skip
    assert doc["ok"] == 5
    assert all((back / p.name).read_bytes() == p.read_bytes() for p in files)


def test_a_missing_out_dir_is_a_usage_error(run, files, tmp_path):
    run("encrypt", "-k", "session", "--out-dir", str(tmp_path / "no"), str(files[0])).expect_error(
        2, "--out-dir", "not a directory"
    )


def test_two_inputs_writing_the_same_output_are_refused_before_anything(run, files, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    twin = other / files[0].name
    twin.write_bytes(b"x")
    out = tmp_path / "o"
    out.mkdir()
    run("encrypt", "-k", "session", "--out-dir", str(out), str(files[0]), str(twin)).expect_error(
        2, "would both write"
    )
    assert list(out.iterdir()) == []


def test_a_failure_does_not_stop_the_others(run, files, home, tmp_path):
    missing = tmp_path / "missing.txt"
    args = [str(files[0]), str(missing), str(files[1])]
    res = run("--json", "encrypt", "--key", "session", *args)
    assert res.code == 3
    assert res.stderr.splitlines() == [f"ekm: error: {missing}: {missing} does not exist"]
    doc = json.loads(res.stdout)
    assert [e["ok"] for e in doc["files"]] == [True, False, True]
    assert doc["files"][1]["exit_code"] == 3 and "does not exist" in doc["files"][1]["error"]
    assert Path(f"{files[0]}.ekm").exists() and Path(f"{files[1]}.ekm").exists()


def test_fail_fast_stops_and_reports_the_rest_as_skipped(run, files, tmp_path):
    missing = tmp_path / "missing.txt"
    res = run("--json", "encrypt", "-k", "session", "--fail-fast", str(missing), *_names(files))
    assert res.code == 3
    doc = json.loads(res.stdout)
    assert doc["failed"] == 1 and doc["skipped"] == 5 and doc["ok"] == 0
    assert all(e.get("skipped") for e in doc["files"][1:])
    assert not any(Path(f"{p}.ekm").exists() for p in files)
    text = run("encrypt", "-k", "session", "--fail-fast", str(missing), str(files[0]))
    assert "skipped after the first failure" in text.stderr


def test_a_tampered_file_among_good_ones_fails_alone_with_exit_4(run, files, home):
    run("encrypt", "--key", "session", *_names(files)).expect_ok()
    bad = Path(f"{files[2]}.ekm")
    data = bytearray(bad.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    for p in files:
        p.unlink()
    res = run("decrypt", *[f"{p}.ekm" for p in files])
    assert res.code == 4
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("ekm: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"ekm: error: {bad}: ")
    assert "not authentic" in errors[0]
    assert not files[2].exists()  # nothing released for the tampered one
    assert all(p.exists() for i, p in enumerate(files) if i != 2)
    assert sum(r["result"] == "denied" for r in _records(home, "decrypt")) == 1


def test_stdin_only_once_and_its_output_on_stdout(files, ekm_env, run):
    run("encrypt", "-k", "session", "-", "-").expect_error(2, "only once")
    res = subprocess.run(
        ["ekm", "encrypt", "-k", "session", str(files[0]), "-"],
        input=b"from stdin", capture_output=True, env=ekm_env, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert Path(f"{files[0]}.ekm").exists()
    back = subprocess.run(["ekm", "decrypt"], input=res.stdout, capture_output=True, env=ekm_env)
    assert back.returncode == 0 and back.stdout == b"from stdin"
    run("--json", "encrypt", "-k", "session", str(files[1]), "-").expect_error(2, "--json")


def test_one_output_option_with_several_files_is_a_usage_error(run, files, tmp_path):
    run("encrypt", "-k", "session", "-o", str(tmp_path / "x"), *_names(files[:2])).expect_error(
        2, "-o names one output"
    )
    run("sign", "-k", "rsa", "-o", str(tmp_path / "x"), *_names(files[:2])).expect_error(
        2, "-o names one signature"
    )


def test_decrypt_input_without_ekm_suffix_fails_alone(run, files):
    run("encrypt", "--key", "session", "-o", f"{files[1]}.ekm", str(files[1])).expect_ok()
    files[1].unlink()
    res = run("decrypt", str(files[0]), f"{files[1]}.ekm")
    assert res.code == 2 and "does not end in .ekm" in res.stderr
    assert files[1].exists()


def test_sign_and_verify_many_with_one_bad_signature(run, files, home, tmp_path):
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    before = len(_records(home, "sign"))
    res = run("sign", "--key", "rsa", *_names(files)).expect_ok()
    assert res.stderr.rstrip().endswith("signed 5 of 5 files")
    assert len(_records(home, "sign")) - before == 5
    assert all(Path(f"{p}.sig").exists() for p in files)
    run("sign", "--key", "rsa", "--out-dir", str(sigs), *_names(files[:2])).expect_ok()
    assert sorted(p.name for p in sigs.iterdir()) == ["f0.txt.sig", "f1.txt.sig"]
    files[3].write_bytes(b"changed after signing")
    res = run("--json", "verify", *_names(files))
    assert res.code == 4
    doc = json.loads(res.stdout)
    assert [e["ok"] for e in doc["files"]] == [True, True, True, False, True]
    assert doc["files"][0]["key"] == "rsa" and doc["files"][0]["version"] == 1
    assert doc["files"][3]["exit_code"] == 4
    verifies = _records(home, "verify")[-5:]
    assert [r["result"] for r in verifies].count("ok") == 4


def test_rewrap_many_after_rotation_one_record_per_file(run, files, home, tmp_path):
    run("encrypt", "--key", "session", *_names(files)).expect_ok()
    run("rotate", "session", "--force").expect_ok()
    before = len(_records(home, "rewrap"))
    missing = tmp_path / "gone.ekm"
    res = run("--json", "rewrap", *[f"{p}.ekm" for p in files], str(missing))
    assert res.code == 3
    doc = json.loads(res.stdout)
    assert [e["ok"] for e in doc["files"]] == [True] * 5 + [False]
    assert all(e["changed"] and e["version"] == 2 for e in doc["files"][:5])
    results = [r["result"] for r in _records(home, "rewrap")[before:]]
    assert results == ["ok"] * 5 + ["error"]  # one record per file, the failure included
    run("rewrap", "-").expect_error(2, "stdin")


def test_verify_stdin_among_files_needs_sig(run, files):
    run("sign", "--key", "rsa", *_names(files[:2])).expect_ok()
    run("verify", str(files[0]), "-").expect_error(2, "--sig")
    run("verify", "--sig", f"{files[0]}.sig", *_names(files[:2])).expect_error(2, "--sig")
