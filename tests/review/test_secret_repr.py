"""Review fixes: no secret reaches a ``repr`` (tracebacks, logs, debuggers print reprs)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from ekm.crypto.dekcache import _Entry
from ekm.crypto.keytypes import KeyType, KeyUsage, SecurityLevel
from ekm.masterkey import RootKey
from ekm.model import Key, RotationPolicy
from ekm.monitor.daemon import MonitorOptions
from ekm.rotation.backup import BundleKey

SECRET = b"abcdefghijklmnopqrstuvwxyzABCDEF"  # letters only: shown verbatim by a leaking repr


def test_rootkey_repr_hides_the_root_key() -> None:
    rk = RootKey(bytearray(SECRET))
    text = repr(rk)
    assert "RootKey" in text
    assert SECRET.decode() not in text and "bytearray" not in text
    assert rk.key == bytearray(SECRET)  # the field is still there for the code that needs it


def test_data_key_cache_entry_repr_hides_the_data_key() -> None:
    entry = _Entry(dek=SECRET, wrapped=b"W" * 60, created=0.0)
    text = repr(entry)
    assert SECRET.decode() not in text
    assert "W" * 60 not in text
    assert "uses=0" in text


def test_backup_bundle_key_repr_hides_material() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    key = Key(
        name="db",
        type=KeyType.AES_256_GCM,
        usage=KeyUsage.ENCRYPTION,
        backend="file",
        policy=RotationPolicy(),
        labels={},
        versions=[],
        created=now,
        rotated=None,
    )
    bk = BundleKey(key=key, material={1: SECRET})
    text = repr(bk)
    assert "'db'" in text
    assert SECRET.decode() not in text


SLACK = "https://hooks.slack.com/services/T0SECRET/B0SECRET/XXXXsecretXXXX"
HOOK = "https://alerts.example.org/ekm?token=hooksecret123"


def _monitor_config() -> SimpleNamespace:
    return SimpleNamespace(
        sections={
            "monitor": {
                "interval": "60s",
                "webhook": HOOK,
                "webhook_secret_env": "EKM_WEBHOOK_SECRET",
                "slack": SLACK,
                "alert_levels": ["critical", "high"],
                "fail_on": "high",
                "metrics_port": None,
                "metrics_bind": "127.0.0.1",
                "metrics_file": None,
            }
        }
    )


def test_monitor_options_repr_cuts_webhook_urls_to_scheme_and_host() -> None:
    opts = MonitorOptions.resolve(_monitor_config())
    text = repr(opts)
    assert "hooks.slack.com" in text and "alerts.example.org" in text
    for secret in ("T0SECRET", "B0SECRET", "XXXXsecretXXXX", "hooksecret123", "token="):
        assert secret not in text, secret
    assert opts.slack == SLACK  # the value itself is untouched


def test_config_repr_holds_no_option_values(tmp_path: Path) -> None:
    from ekm import config as cfgmod

    path = tmp_path / "ekm.toml"
    path.write_text(f'[monitor]\nslack = "{SLACK}"\n')
    os.chmod(path, 0o600)
    cfg = cfgmod.load(path, required=True)
    assert cfg.get("monitor", "slack") == SLACK
    text = repr(cfg)
    assert "ekm.toml" in text
    assert "XXXXsecretXXXX" not in text and "hooks.slack.com" not in text


def test_monitor_options_repr_with_no_urls() -> None:
    cfg = _monitor_config()
    cfg.sections["monitor"].update(webhook=None, slack=None)
    text = repr(MonitorOptions.resolve(cfg))
    assert "webhook=None" in text and "slack=None" in text
    assert SecurityLevel.HIGH.name in text
