"""What leaves the monitor, for every check id: webhook bodies, Slack payloads, the metrics
exposition and the ``monitor.event`` audit records.

One home is broken in every way a check can see (files, keys, audit log, a Vault that refuses
its token, an HSM whose module is missing, a receiver that is down), the real checks run over
it, and every outgoing byte is searched for key material, the root key, the passphrase, the
HSM PIN, the Vault token, the webhook secret and URL path, and absolute paths outside the home.
The home's own path is allowed (docs/monitoring.md, "What payloads contain").
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.manager import KeyManager
from ekm.monitor.events import redact_paths
from ekm.monitor.metrics import render
from ekm.monitor.notifiers import Dispatcher, SlackNotifier, WebhookNotifier
from ekm.monitor.runner import MonitorSession
from ekm.timeutil import utcnow
from tests.vaultlike.server import VaultLike

VAULT_TOKEN = "hvs.R4-revoked-token-0123456789"
HSM_PIN = "r4-pin-987654321"
WEBHOOK_SECRET = "r4-webhook-secret-0123456789abcdef"
HOOK_PATH = "/services/T0R4/B0R4/r4slackpathtoken"
OUTSIDE_DIR = "/opt/r4-vendor-secret-dir"

#: Every check id the monitor can report (checks.py, runner.py, notifiers.py).
ALL_CHECK_IDS = {
    "files.permissions",
    "files.owner",
    "files.unexpected",
    "files.deleted",
    "files.tampered",
    "integrity.skipped",
    "rotation.overdue",
    "rotation.due_soon",
    "key.usage_limit",
    "auditlog.chain",
    "activity.failed_burst",
    "backend.unreachable",
    "backend.auth",
    "monitor.check_failed",
    "notifier.failed",
}

# An absolute path: "/" not continuing a word, a URL or a path cut by redact_paths ("…/x").
_ABS = re.compile(r"(?<![\w:/.~…-])/[^\s'\"()\[\],;<>`\\]*")


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{HOOK_PATH}"


def _secrets(home: Path) -> list[bytes]:
    mgr = KeyManager(home, env={})
    mgr.unlock()
    out = [VAULT_TOKEN, HSM_PIN, WEBHOOK_SECRET, HOOK_PATH, "r4slackpathtoken", OUTSIDE_DIR]
    found = [s.encode() for s in out]
    for key in mgr.list_keys():
        for v in key.versions:
            if mgr.keystore.has_material(key.name, v.version):
                raw = mgr.material(key.name, v.version)
                found += [raw, raw.hex().encode(), base64.b64encode(raw)]
                found.append(base64.urlsafe_b64encode(raw).rstrip(b"="))
    root = (home / "master.key").read_bytes()
    found += [root, root.hex().encode(), base64.b64encode(root)]
    return [s for s in found if len(s) >= 12]


def _break_everything(home: Path, vault_url: str, now) -> None:
    mgr = KeyManager(home, env={})
    mgr.unlock()
    key = mgr.keystore.load("session", refresh=True)
    key.versions[0].usage_count = 2**32
    mgr.keystore.save(key)
    for _ in range(8):
        mgr.audit_log.append("unlock", result="denied", error="IntegrityError", now=now)
    notes = home / "notes.txt"
    notes.write_text("operator notes\n")
    notes.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(notes, 4242, 4242)
    (home / "keys" / "evil.txt").write_text("planted")
    (home / "keys" / "evil.txt").chmod(0o600)
    os.symlink(f"{OUTSIDE_DIR}/master.key", home / "link")
    (home / "keys" / "hmac.json").write_text("{not json")
    (home / "keys" / "api_internal.json").unlink()
    token_file = home / "vault.token"
    token_file.write_text(VAULT_TOKEN)
    token_file.chmod(0o600)
    cfg = home / "ekm.toml"
    cfg.write_text(
        cfg.read_text()
        + f'\n[vault]\nendpoint = "{vault_url}"\nallow_plaintext_http = true\n'
        + f'token_file = "{token_file}"\n'
        + f'\n[hsm]\nlibrary_path = "{OUTSIDE_DIR}/libvendor.so"\ntoken_label = "r4"\n'
        + f'pin = "{HSM_PIN}"\n'
    )


@pytest.fixture
def vault():
    with VaultLike() as v:
        yield v


def _events_of_every_check(home: Path, vault: VaultLike) -> tuple[list, list[bytes], list]:
    """(every event seen, metrics expositions, sessions) over a home broken in every way."""
    url = vault.start()
    start = utcnow()
    session = MonitorSession(KeyManager(home, env={}))
    session.run(now=start)  # the baseline: every key is known
    soon = start + timedelta(days=6, hours=12)
    _break_everything(home, url, soon)
    events, metrics = [], []
    session.manager = KeyManager(home, env={})
    for now in (soon, start + timedelta(days=400)):
        result = session.run(now=now)
        events += result.events + result.resolved
        metrics.append(render(result.snapshot))
    # Locked and unable to unlock: the master key file moved out of the home.
    (home / "master.key").rename(home / "master.key.moved")
    locked = MonitorSession(KeyManager(home, env={})).run(now=start + timedelta(days=401))
    events += locked.events
    # A check that cannot run at all: master.json gone.
    (home / "master.json").unlink()
    broken = MonitorSession(KeyManager(home, env={})).run(now=start + timedelta(days=402))
    events += broken.events
    metrics.append(render(broken.snapshot))
    # The audit log truncated.
    (home / "master.key.moved").rename(home / "master.key")
    log = home / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-2]))
    result = session.run(now=start + timedelta(days=403))
    events += result.events + result.resolved
    # A receiver that is down: notifier.failed.
    with Dispatcher(
        [WebhookNotifier(_dead_url(), timeout=1)], max_retries=0, sleep=lambda s: None
    ) as dispatcher:
        dispatcher.publish(events[:1])
        assert dispatcher.drain(30)
        events += dispatcher.failures()
    return events, metrics, [session]


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _assert_clean(blob: bytes, secrets: list[bytes], home: Path, what: str) -> None:
    for secret in secrets:
        assert secret not in blob, f"{what} holds a secret or an outside path"
    text = blob.decode()
    try:
        texts = _strings(json.loads(text))
    except ValueError:
        texts = [text]
    for t in texts:
        for path in _ABS.findall(t):
            assert path == str(home) or path.startswith(f"{home}/"), f"{what}: {path}"


def test_no_payload_of_any_check_holds_a_secret_or_an_outside_path(fhome, vault):
    home = fhome
    secrets = _secrets(home)
    events, metrics, _ = _events_of_every_check(home, vault)
    fired = {e.check for e in events}
    expected = ALL_CHECK_IDS if os.geteuid() == 0 else ALL_CHECK_IDS - {"files.owner"}
    assert expected <= fired, f"not fired: {sorted(expected - fired)}"
    webhook = WebhookNotifier(_dead_url(), secret=WEBHOOK_SECRET, home=str(home))
    slack = SlackNotifier(_dead_url(), home=str(home))
    for e in events:
        body = webhook.body(e)
        _assert_clean(body, secrets, home, f"webhook body of {e.check}")
        _assert_clean(webhook.headers(body)["X-Ekm-Signature"].encode(), secrets, home, "sig")
        _assert_clean(json.dumps(slack.payload(e)).encode(), secrets, home, f"slack {e.check}")
    for m in metrics:
        _assert_clean(m, secrets, home, "metrics")
    records = [
        json.loads(line)
        for line in (home / "audit.log").read_bytes().splitlines()
        if b'"monitor.event"' in line
    ]
    assert {r["check"] for r in records} >= {"files.tampered", "backend.auth", "key.usage_limit"}
    for r in records:
        _assert_clean(json.dumps(r).encode(), secrets, home, f"monitor.event {r['check']}")


def test_hsm_module_path_outside_the_home_is_cut_to_its_name(fhome):
    """Before the fix the HSM's error quoted /opt/...: the vendor's directory left the host."""
    cfg = fhome / "ekm.toml"
    cfg.write_text(
        cfg.read_text()
        + f'\n[hsm]\nlibrary_path = "{OUTSIDE_DIR}/libvendor.so"\ntoken_label = "r4"\n'
        + 'pin_env = "EKM_PKCS11_PIN"\n'
    )
    result = MonitorSession(KeyManager(fhome, env={})).run()
    (ev,) = [e for e in result.events if e.check == "backend.unreachable"]
    assert OUTSIDE_DIR not in ev.message
    assert "…/libvendor.so does not exist" in ev.message
    assert "[hsm] library_path" in ev.message


def test_master_key_file_outside_the_home_is_named_by_its_config_key(fhome):
    cfg = fhome / "ekm.toml"
    cfg.write_text(cfg.read_text() + f'\n[master_key]\nkey_file = "{OUTSIDE_DIR}/master.key"\n')
    result = MonitorSession(KeyManager(fhome, env={}), audit=False).run()
    deleted = [e for e in result.events if e.check == "files.deleted"]
    assert deleted, [e.check for e in result.events]
    for e in deleted:
        assert OUTSIDE_DIR not in e.subject + e.message
    assert any("…/master.key" in e.message for e in deleted)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("module /opt/v/lib/x.so missing", "module …/x.so missing"),
        ("chmod 0600 {home}/keys/a.json", "chmod 0600 {home}/keys/a.json"),
        ("{home}work/secret.txt", "…/secret.txt"),
        ("{home}/../../etc/shadow", "…/shadow"),
        ("Vault at http://127.0.0.1:8200/v1/x", "Vault at http://127.0.0.1:8200/v1/x"),
        ("mode 0600/0700, group/others", "mode 0600/0700, group/others"),
        ("at '/etc/passwd'", "at '…/passwd'"),
    ],
)
def test_redact_paths(text, want, tmp_path):
    home = str(tmp_path / "home")
    assert redact_paths(text.format(home=home), home) == want.format(home=home)


def test_a_session_given_a_new_locked_manager_unlocks_it_again(fhome):
    """Before the fix the session remembered "unlocked" and read material through a locked
    manager: every key with material was reported as files.tampered."""
    session = MonitorSession(KeyManager(fhome, env={}), audit=False)
    assert session.run().events == []
    session.manager = KeyManager(fhome, env={})
    events = session.run().events
    assert [e.check for e in events] == []
