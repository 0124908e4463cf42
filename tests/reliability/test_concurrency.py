"""Concurrency: several ekm processes rotating, generating and encrypting on one home at once.

Every process must exit 0 or with the clear lock error (exit 4, "another ekm process ...");
afterwards no version is lost (each key has exactly one new version per successful rotation),
no file is torn (keystore and audit chain verify), and each successful operation left exactly
one audit record.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.reliability import harness

ROTATORS = 4
GENERATORS = 2
ENCRYPTORS = 2


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*harness.ekm_argv(), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_parallel_writers_lose_nothing(prepared: Path, tmp_path: Path) -> None:
    before = harness.snapshot(prepared)
    ciphertexts = harness.make_ciphertexts(prepared, before)
    env = harness.clean_env(prepared)
    jobs: list[tuple[str, subprocess.Popen[bytes]]] = []
    for i in range(ROTATORS):
        jobs.append(("rotate", _start(["rotate", "api_internal", "--force"], env)))
        if i < GENERATORS:
            jobs.append(
                (f"gen{i}", _start(["generate", f"conc_{i}", "--type", "hmac-sha256"], env))
            )
        if i < ENCRYPTORS and harness.operation("encrypt").available():
            src = tmp_path / f"p{i}.txt"
            src.write_bytes(b"concurrent plaintext\n" * 50)
            out = str(tmp_path / f"c{i}.ekm")
            jobs.append(
                (f"enc{i}", _start(["encrypt", "--key", "session", "-o", out, str(src)], env))
            )
    results = [(kind, p.wait(timeout=120), p.stderr.read().decode()) for kind, p in jobs]
    for kind, code, err in results:
        assert code in (0, 4), f"{kind}: exit {code}: {err}"
        assert "Traceback" not in err
        if code == 4:
            assert "another ekm process" in err, f"{kind}: {err}"
    rotated = sum(1 for kind, code, _ in results if kind == "rotate" and code == 0)
    mgr = harness.manager(prepared)
    mgr.unlock()
    assert mgr.keystore.verify_all() == []
    assert mgr.audit_log.verify().ok
    state = harness.snapshot(prepared)
    old = before.versions["api_internal"]
    assert len(state.versions["api_internal"]) == len(old) + rotated, state.versions["api_internal"]
    for (name, version), secret in before.material.items():
        assert state.material[(name, version)] == secret, f"{name} v{version} changed"
    from ekm.crypto import envelope
    from ekm.crypto.wrapping import AeadWrapper

    for name, version, pt, ct in ciphertexts:
        w = AeadWrapper(name, version, "aes-256-gcm", state.material[(name, version)])
        assert envelope.decrypt(ct, b"aad", resolve=lambda n, v, w=w: w) == pt
    for i in range(GENERATORS):
        gen_ok = any(k == f"gen{i}" and c == 0 for k, c, _ in results)
        assert (f"conc_{i}" in state.versions) == gen_ok
    records = [
        r
        for r in mgr.audit_log.records()
        if r.get("op") == "rotate" and r.get("key") == "api_internal"
    ]
    assert len(records) == rotated, "one audit record per successful rotation"
