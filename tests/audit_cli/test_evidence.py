"""``ekm audit --evidence DIR``: a signed bundle an auditor verifies with openssl alone.

The README's openssl commands are run as written, with the real openssl binary, on a real
bundle; then the bundle is tampered with and both openssl and ``ekm verify`` must notice.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

FILES = {
    "findings.json", "inventory.json", "audit-log.json", "rule-sets.json", "bundle.json",
    "signing-key.pem", "README.txt", "MANIFEST.sha256", "MANIFEST.sha256.sig",
}  # fmt: skip


def _bundle(run, tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "evidence"
    res = run("audit", "--compliance", "pci-dss", "--evidence", str(out), "--soft-fail", *args)
    assert res.code == 0, res.stderr
    assert f"wrote the evidence bundle to {out}" in res.stderr
    return out


def _readme_commands(bundle: Path) -> list[str]:
    """The three shell commands of README.txt's numbered steps, as written there."""
    text = (bundle / "README.txt").read_text()
    blocks = re.findall(r"\n\n((?:   .+\n)+)", text)
    return ["\n".join(line[3:] for line in b.splitlines()) for b in blocks][:3]


def _sh(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, check=False)


def test_bundle_contents(run, home, tmp_path):
    bundle = _bundle(run, tmp_path)
    assert {p.name for p in bundle.iterdir()} == FILES
    findings = json.loads((bundle / "findings.json").read_text())
    assert findings["passed"] and findings["findings"]  # passes without --verbose
    assert findings["home"] == str(home) and findings["collected_at"]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert (
        meta["home"] == str(home)
        and meta["home_id"] == json.loads((home / "master.json").read_text())["key_id"]
    )
    assert meta["collected_at"] and meta["as_of"] and meta["ekm_version"]
    sets = json.loads((bundle / "rule-sets.json").read_text())["rule_sets"]
    pci = next(s for s in sets if s["id"] == "pci-dss")
    import ekm.compliance

    shipped = Path(ekm.compliance.__file__).parent / "rules" / "pci-dss.toml"
    assert pci["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    log = json.loads((bundle / "audit-log.json").read_text())
    assert log["ok"] is True and log["records"] > 0
    inv = json.loads((bundle / "inventory.json").read_text())
    assert {k["name"] for k in inv["keys"]} >= {"database_encryption", "rsa"}
    blob = "".join(p.read_text() for p in bundle.iterdir() if p.suffix != ".sig")
    material = (home / "master.key").read_text().splitlines()[-1]
    assert material not in blob and "wrapped_private_key" not in blob


def test_openssl_alone_verifies_the_bundle_as_the_readme_says(run, home, tmp_path):
    bundle = _bundle(run, tmp_path)
    fp_cmd, sig_cmd, files_cmd = _readme_commands(bundle)
    assert fp_cmd.startswith("openssl pkey") and sig_cmd.startswith("openssl dgst -sha384")
    fp = _sh(fp_cmd, bundle)
    assert fp.returncode == 0, fp.stderr
    fingerprint = fp.stdout.split()[0]
    assert fingerprint in (bundle / "README.txt").read_text()
    created = [json.loads(line) for line in (home / "audit.log").read_text().splitlines()]
    (keyrec,) = [r for r in created if r["op"] == "evidence.key.create"]
    assert keyrec["fingerprint"] == fingerprint
    sig = _sh(sig_cmd, bundle)
    assert sig.returncode == 0 and "Verified OK" in sig.stdout, sig.stdout + sig.stderr
    check = _sh(files_cmd, bundle)
    lines = check.stdout.splitlines()
    assert len(lines) == 7 and all(line.startswith("OK ") for line in lines), check.stdout
    # the audit.run record names the manifest's hash
    manifest = hashlib.sha256((bundle / "MANIFEST.sha256").read_bytes()).hexdigest()
    (runrec,) = [r for r in created if r["op"] == "audit.run"][-1:]
    assert runrec["evidence_manifest_sha256"] == manifest
    assert runrec["evidence_key"] == fingerprint
    run("verify", str(bundle)).expect_ok()


@pytest.mark.parametrize("victim", ["findings.json", "MANIFEST.sha256", "MANIFEST.sha256.sig"])
def test_tampering_is_caught_by_openssl_and_ekm_verify(run, tmp_path, victim):
    bundle = _bundle(run, tmp_path)
    _, sig_cmd, files_cmd = _readme_commands(bundle)
    path = bundle / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    if victim == "findings.json":
        assert "MISMATCH findings.json" in _sh(files_cmd, bundle).stdout
    else:
        assert "Verified OK" not in _sh(sig_cmd, bundle).stdout
    run("verify", str(bundle)).expect_error(4, str(bundle))


def test_added_file_and_foreign_key_are_refused(run, tmp_path, base_env, template_home):
    bundle = _bundle(run, tmp_path)
    (bundle / "extra.json").write_text("{}")
    run("verify", str(bundle)).expect_error(4, "extra.json is not in the signed manifest")
    (bundle / "extra.json").unlink()
    # another home (with its own evidence key) refuses a bundle signed by this one
    from tests.conftest import copy_home

    other = copy_home(template_home, tmp_path / "other")
    env = {**base_env, "EKM_HOME": str(other)}
    run("audit", "--compliance", "hipaa", "--evidence", str(tmp_path / "o"), "--soft-fail", env=env)
    run("verify", str(bundle), env=env).expect_error(4, "not this home's evidence key")


def test_signing_key_is_created_once_and_reused(run, home, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _bundle(run, tmp_path / "a")
    second = _bundle(run, tmp_path / "b")
    assert (first / "signing-key.pem").read_bytes() == (second / "signing-key.pem").read_bytes()
    log = (home / "audit.log").read_text()
    assert log.count('"op":"evidence.key.create"') == 1
    assert oct((home / "evidence-signing.key").stat().st_mode & 0o777) == "0o600"


def test_evidence_errors(run, home, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    run("audit", "--evidence", str(full)).expect_error(2, "directory is not empty")
    run("audit", "--evidence", str(tmp_path / "no" / "dir")).expect_error(3, "parent directory")
    run("verify", str(tmp_path)).expect_error(3, "not an ekm evidence bundle")
    (home / "evidence-signing.key").write_text('{"format": 1}')
    run("audit", "--evidence", str(tmp_path / "e")).expect_error(4, "evidence-signing.key")


def test_verify_without_a_home_checks_the_bundle_against_its_own_key(run, tmp_path, base_env):
    bundle = _bundle(run, tmp_path)
    env = {**base_env, "EKM_HOME": str(tmp_path / "nowhere")}
    res = run("verify", str(bundle), env=env)
    assert res.code == 0, res.stderr
    assert "checked against its own key" in res.stderr
