"""Two ekm homes sharing one keystore on a real OpenBao dev server: deploy, generate, rotate,
encrypt on one home and decrypt on the other."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ekm.manager import KeyManager
from tests.openbao.bao import api


def test_two_homes_share_a_keystore_on_openbao(
    make_home: Callable[..., Path],
    run: Callable[..., Any],
    bao_env: dict[str, str],
    space: Any,
    tmp_path: Path,
) -> None:
    a, b = make_home("a"), make_home("b")
    first = json.loads(run("--home", str(a), "--json", "deploy", env=bao_env).expect_ok().stdout)
    second = json.loads(run("--home", str(b), "--json", "deploy", env=bao_env).expect_ok().stdout)
    steps = [{x["step"]: x["status"] for x in r["actions"]} for r in (first, second)]
    assert steps[0]["shared master key"] == "created"
    assert steps[1]["shared master key"] == "joined"
    # the root key is wrapped by OpenBao's Transit engine, never stored in clear
    meta = json.loads((a / "master.json").read_text())
    assert meta == json.loads((b / "master.json").read_text())
    assert meta["source"] == "vault-transit" and meta["wrapped_root"].startswith("vault:v1:")

    run("--home", str(a), "generate", "gamma", "--type", "aes-256-gcm", env=bao_env).expect_ok()
    listed = json.loads(run("--home", str(b), "--json", "keys", "list", env=bao_env).stdout)
    assert [k["name"] for k in listed["keys"]] == ["alpha", "beta", "gamma"]

    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"attack at dawn\n" * 100)
    sealed1 = tmp_path / "one.ekm"
    run(
        "--home", str(a), "encrypt", "-k", "gamma", str(plain), "-o", str(sealed1), env=bao_env
    ).expect_ok()
    run("--home", str(b), "rotate", "gamma", "--force", env=bao_env).expect_ok()
    sealed2 = tmp_path / "two.ekm"
    run(
        "--home", str(b), "encrypt", "-k", "gamma", str(plain), "-o", str(sealed2), env=bao_env
    ).expect_ok()
    for home, blob in ((b, sealed1), (a, sealed2), (a, sealed1)):
        out = tmp_path / f"out-{home.name}-{blob.stem}"
        run("--home", str(home), "decrypt", str(blob), "-o", str(out), env=bao_env).expect_ok()
        assert out.read_bytes() == plain.read_bytes()
    # both homes read version 2 as primary, from OpenBao itself
    for home in (a, b):
        assert KeyManager(home, env=bao_env).key_info("gamma").latest_version == 2
    status, body = api(
        space.server.url,
        "GET",
        f"{space.mount}/metadata/ekm/keys/gamma",
        token=space.server.root_token,
    )
    assert status == 200 and body["data"]["current_version"] >= 2  # a KV version per write
    for home in (a, b):
        run("--home", str(home), "audit", "--verify-log", env=bao_env).expect_ok()
