"""High availability on a real 3-node OpenBao Raft cluster: the leader is killed mid-way.

Two homes share one keystore; ``a`` lists the nodes leader first, ``b`` a standby first.
While both rotate and encrypt concurrently, the leader gets ``kill -9``. Every ekm command
must ride through (follow a redirect or move to the next node, retry within
``failover_timeout``) and exit 0. Afterwards: no lost or duplicated key version, every
ciphertext made before or during the failover decrypts, both audit logs verify.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.openbao.conftest import write_home

EKM = str(Path(sys.executable).parent / "ekm")
ROUNDS = 6  # per home; the leader dies after the first round of each
FAILOVER_TIMEOUT = 60


def _ekm(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EKM, "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=FAILOVER_TIMEOUT * 3,
    )


@pytest.fixture
def cluster(openbao_raft: Any) -> Any:
    """The session's cluster, healthy (a node killed by an earlier test is restarted)."""
    openbao_raft.wait_healthy()
    return openbao_raft


def _homes(cluster: Any, tmp_path: Path) -> tuple[Path, Path, str]:
    mount = "kv-" + secrets.token_hex(4)
    cluster.new_kv_mount(mount)
    key = "ekm-" + secrets.token_hex(4)
    leader = cluster.leader().url
    standbys = [u for u in cluster.urls if u != leader]

    def table(order: list[str]) -> str:
        listed = ", ".join(f'"{u}"' for u in order)
        return (
            f'endpoints = [{listed}]\nmount_path = "{mount}"\ntransit_key = "{key}"\n'
            f"failover_timeout = {FAILOVER_TIMEOUT}"
        )

    a = write_home(tmp_path / "a", table([leader, *standbys]))
    b = write_home(tmp_path / "b", table([*standbys, leader]))
    return a, b, mount


def test_read_your_writes_across_nodes(
    cluster: Any, base_env: dict[str, str], tmp_path: Path
) -> None:
    """A rotation through one node is seen at once by a home that lists another first."""
    env = {**base_env, "VAULT_TOKEN": cluster.root_token}
    a, b, _ = _homes(cluster, tmp_path)
    for home in (a, b):
        assert _ekm(home, env, "deploy").returncode == 0
    for expected in range(2, 7):
        writer, reader = (a, b) if expected % 2 else (b, a)
        done = _ekm(writer, env, "rotate", "alpha", "--force")
        assert done.returncode == 0, done.stderr
        shown = _ekm(reader, env, "--json", "keys", "show", "alpha")
        assert shown.returncode == 0, shown.stderr
        versions = [v["version"] for v in json.loads(shown.stdout)["versions"]]
        assert max(versions) == expected


def test_killing_the_leader_mid_way_loses_nothing(
    cluster: Any, base_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**base_env, "VAULT_TOKEN": cluster.root_token}
    a, b, _ = _homes(cluster, tmp_path)
    for home in (a, b):
        done = _ekm(home, env, "deploy")
        assert done.returncode == 0, done.stderr
    plain = tmp_path / "plain"
    plain.write_bytes(b"payload " * 512)

    lock = threading.Lock()
    rotations: list[str] = []
    ciphertexts: list[Path] = []
    failures: list[str] = []
    timings: list[tuple[float, float]] = []
    first_round = threading.Barrier(3)

    def work(home: Path) -> None:
        for i in range(ROUNDS):
            for args in (
                ["rotate", "alpha", "--force"],
                [
                    "encrypt",
                    "-k",
                    "alpha",
                    "-o",
                    str(tmp_path / f"{home.name}-{i}.ekm"),
                    str(plain),
                ],
            ):
                start = time.monotonic()
                done = _ekm(home, env, *args)
                end = time.monotonic()
                with lock:
                    timings.append((start, end))
                    if done.returncode != 0:
                        failures.append(f"{home.name} {args[0]}: {done.returncode} {done.stderr}")
                    elif args[0] == "rotate":
                        rotations.append(home.name)
                    else:
                        ciphertexts.append(tmp_path / f"{home.name}-{i}.ekm")
            if i == 0:
                first_round.wait(timeout=120)

    threads = [threading.Thread(target=work, args=(h,)) for h in (a, b)]
    for t in threads:
        t.start()
    first_round.wait(timeout=120)
    leader = cluster.leader()
    killed_at = time.monotonic()
    leader.process.kill9()
    for t in threads:
        t.join(timeout=FAILOVER_TIMEOUT * 10)
    assert not any(t.is_alive() for t in threads)
    assert failures == []

    # 0 lost or duplicated versions: one version per successful rotation, numbered 1..n
    assert len(rotations) == 2 * ROUNDS
    for home in (a, b):
        shown = _ekm(home, env, "--json", "keys", "show", "alpha")
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        assert [v["version"] for v in doc["versions"]] == list(range(1, 2 + len(rotations)))
    # every ciphertext, made before or during the failover, decrypts on both homes
    assert len(ciphertexts) == 2 * ROUNDS
    for blob in ciphertexts:
        for home in (a, b):
            out = blob.with_suffix(f".{home.name}.out")
            done = _ekm(home, env, "decrypt", str(blob), "-o", str(out))
            assert done.returncode == 0, done.stderr
            assert out.read_bytes() == plain.read_bytes()
    for home in (a, b):
        done = _ekm(home, env, "audit", "--verify-log")
        assert done.returncode == 0, done.stdout + done.stderr
    during = [end - start for start, end in timings if start <= killed_at + 5 and end >= killed_at]
    print(f"slowest command across the failover: {max(during, default=0):.1f} s")
    cluster.restart(leader)
