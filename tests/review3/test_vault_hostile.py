"""Review fixes: Vault answers are hostile input; ``vault.verify = false`` is said out loud.

A small HTTP server on 127.0.0.1 answers every call with a body the test chooses. Before the
fix, ``"data": []`` made kv_write / kv_list / Transit calls raise AttributeError and a deeply
nested answer raised RecursionError (both "internal error" tracebacks), and a 40 MiB answer
was parsed whole; ``verify = false`` was silent apart from urllib3's repeated warnings.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ekm.backends.vault_client import MAX_RESPONSE_BYTES, VaultClient, VaultSettings
from ekm.errors import BackendError, EkmWarning
from tests.vaultlike.server import VaultLike

TOKEN = "hvs.review3-SECRET-token"
KV2 = json.dumps({"data": {"type": "kv", "options": {"version": "2"}}}).encode()


class Hostile:
    """Answers ``sys/internal/ui/mounts`` as a kv-v2 mount and everything else with ``body``."""

    def __init__(self) -> None:
        self.body = b"{}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = KV2 if "/sys/internal/ui/mounts/" in self.path else outer.body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_LIST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    h = Hostile()
    h.thread.start()
    try:
        yield h
    finally:
        h.server.shutdown()
        h.server.server_close()


def _client(url: str, **table: Any) -> VaultClient:
    table = {"endpoint": url, "transit_key": "ekm", **table}
    settings = VaultSettings.from_mapping(table, env={"VAULT_TOKEN": TOKEN}, source="t.toml")
    return VaultClient(settings, sleep=lambda s: None, max_retries=0)


CALLS: dict[str, Callable[[VaultClient], Any]] = {
    "kv_write": lambda c: c.kv_write("ekm/k", {"v": "1"}, cas=0),
    "kv_list": lambda c: c.kv_list("ekm"),
    "kv_read": lambda c: c.kv_read("ekm/k"),
    "transit_encrypt": lambda c: c.transit_encrypt(b"x"),
    "transit_decrypt": lambda c: c.transit_decrypt("vault:v1:AAAA"),
    "transit_rewrap": lambda c: c.transit_rewrap("vault:v1:AAAA"),
}
SHAPES = {
    "data-list": {"data": []},
    "data-string": {"data": "x"},
    "data-number": {"data": 7},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_unexpected_shapes_are_one_line_backend_errors(
    hostile: Hostile, call: str, shape: str
) -> None:
    hostile.body = json.dumps(SHAPES[shape]).encode()
    with _client(hostile.url) as c, pytest.raises(BackendError) as err:
        CALLS[call](c)
    msg = str(err.value)
    assert err.value.exit_code == 5
    assert any(w in msg for w in ("malformed", "KV version 1", "unexpected version")), msg
    assert "\n" not in msg and TOKEN not in msg


def test_deeply_nested_answer_is_a_backend_error(hostile: Hostile) -> None:
    hostile.body = b"[" * 200_000 + b"]" * 200_000
    with _client(hostile.url) as c, pytest.raises(BackendError, match="malformed"):
        c.kv_list("ekm")


def test_transit_decrypt_without_plaintext_is_malformed_not_empty(hostile: Hostile) -> None:
    """A 200 answer with no ``plaintext`` used to decrypt to b"" (an empty master key)."""
    hostile.body = json.dumps({"data": {}}).encode()
    with (
        _client(hostile.url) as c,
        pytest.raises(BackendError, match="malformed Transit plaintext"),
    ):
        c.transit_decrypt("vault:v1:AAAA")


def test_oversized_answer_is_refused(hostile: Hostile) -> None:
    pad = "a" * (MAX_RESPONSE_BYTES + 10)
    hostile.body = json.dumps({"data": {"keys": ["k"], "pad": pad}}).encode()
    with _client(hostile.url) as c, pytest.raises(BackendError) as err:
        c.kv_list("ekm")
    assert str(err.value).endswith("larger than 32 MiB; refused")
    assert TOKEN not in str(err.value)


def test_verify_false_warns_once_without_the_token(hostile: Hostile) -> None:
    hostile.body = json.dumps({"data": {"keys": ["k"]}}).encode()
    from ekm.backends.vault import util

    util._WARNED_UNVERIFIED.discard(hostile.url)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(2):
            with _client(hostile.url, verify=False) as c:
                assert c.kv_list("ekm") == ["k"]
                assert c.kv_list("ekm") == ["k"]
    ours = [w for w in seen if issubclass(w.category, EkmWarning)]
    assert len(ours) == 1, [str(w.message) for w in seen]
    text = str(ours[0].message)
    assert text.startswith("vault.verify = false: the TLS certificate of http://127.0.0.1:")
    assert TOKEN not in text
    assert [w for w in seen if "InsecureRequest" in w.category.__name__] == []


def test_verified_client_does_not_warn(hostile: Hostile) -> None:
    hostile.body = json.dumps({"data": {"keys": []}}).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EkmWarning)
        with _client(hostile.url) as c:
            assert c.kv_list("ekm") == []


def test_cli_prints_one_warning_line_for_verify_false(fhome: Path, frun, fenv) -> None:
    with VaultLike() as v:
        cfg = fhome / "ekm.toml"
        cfg.write_text(cfg.read_text() + f'\n[vault]\nendpoint = "{v.url}"\nverify = false\n')
        res = frun("status", "--vault", env={**fenv, "VAULT_TOKEN": v.root_token})
    res.expect_ok()
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ekm: warning: vault.verify = false"), lines
    assert v.root_token not in res.stderr + res.stdout


@pytest.mark.parametrize("endpoint", ["ftp://user:pw-SECRET@v", "user:pw-SECRET@vault:8200"])
def test_bad_endpoint_with_credentials_is_not_echoed(endpoint: str) -> None:
    from ekm.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        VaultSettings.from_mapping({"endpoint": endpoint}, env={"VAULT_TOKEN": TOKEN}, source="t")
    assert "pw-SECRET" not in str(err.value)
    assert str(err.value).endswith("must be an http(s):// URL")
