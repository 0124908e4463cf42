"""``ekm monitor --daemon`` as systemd runs it: a subprocess, real receivers, real signals.

Each problem is induced the way an attacker or an accident would (chmod, an edited key file,
a deleted audit log, wrong passphrases, a key left to expire) and the test waits, with a
deadline, for the alert to reach the receivers. Nothing here asserts how fast anything is.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from ekm.monitor.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.monitor_integration.conftest import (
    PASSPHRASE,
    WEBHOOK_SECRET,
    assert_no_secret,
    run_ekm,
    secrets_of,
    wait_for,
)


def _find(sink, check: str, subject: str | None = None, status: str = "firing") -> list[dict]:
    out = []
    for post in sink.snapshot():
        doc = post.json()
        ev = doc["event"]
        wanted = ev["check"] == check and doc["status"] == status
        if wanted and (subject is None or ev["subject"] == subject):
            out.append(ev)
    return out


def _slack(sink, text: str) -> list[str]:
    return [h for h in sink.slack_headers() if text in h]


def _passes(daemon) -> int:
    found = [int(m) for m in re.findall(r"STATUS=pass (\d+):", "\n".join(daemon.notify.poll()))]
    return max(found, default=0)


def _wait_passes(daemon, n: int) -> None:
    start = _passes(daemon)
    wait_for(lambda: _passes(daemon) >= start + n, f"{n} more monitor passes")


def test_daemon_alerts_once_resolves_scrapes_and_stops_cleanly(home, sinks, start_daemon):
    secrets = secrets_of(home)
    hook, slack = sinks(), sinks(path="/services/T000/B000/XXXX")
    daemon = start_daemon(
        home,
        "--interval",
        "1",
        "--webhook",
        hook.url,
        "--slack",
        slack.url,
        "--metrics-port",
        "0",
        env={"EKM_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    daemon.ready()

    # 1. chmod a key file: HIGH files.permissions, to both receivers, once.
    (home / "keys" / "session.json").chmod(0o644)
    ev = wait_for(lambda: _find(hook, "files.permissions", "keys/session.json"), "webhook")[0]
    assert ev["severity"] == "HIGH" and ev["suspicious"] is True
    assert "chmod 0600" in ev["message"]
    wait_for(lambda: _slack(slack, "HIGH: files.permissions on keys/session.json"), "slack")
    _wait_passes(daemon, 3)
    assert len(_find(hook, "files.permissions", "keys/session.json")) == 1
    assert len(_slack(slack, "HIGH: files.permissions")) == 1

    # Every webhook body is signed with the secret from EKM_WEBHOOK_SECRET.
    for post in hook.snapshot():
        assert verify_signature(
            WEBHOOK_SECRET.encode(),
            post.body,
            post.headers[TIMESTAMP_HEADER],
            post.headers[SIGNATURE_HEADER],
            now=time.time(),
        )

    # 2. fixed: a resolved notice on both.
    (home / "keys" / "session.json").chmod(0o600)
    wait_for(lambda: _find(hook, "files.permissions", status="resolved"), "resolved (webhook)")
    wait_for(lambda: _slack(slack, "RESOLVED: files.permissions"), "resolved (slack)")

    # 3. an edited key file (mode kept): CRITICAL files.tampered.
    path = home / "keys" / "hmac.json"
    with open(path, "r+b") as fh:
        data = fh.read()
        fh.seek(0)
        fh.write(data.replace(b'"30d"', b'"99d"', 1))
    ev = wait_for(lambda: _find(hook, "files.tampered", "hmac"), "tampered alert")[0]
    assert ev["severity"] == "CRITICAL"

    # 4. a deleted audit log: CRITICAL auditlog.chain.
    (home / "audit.log").unlink()
    ev = wait_for(lambda: _find(hook, "auditlog.chain"), "audit log alert")[0]
    assert ev["severity"] == "CRITICAL" and "missing" in ev["message"]
    assert not (home / "audit.log").exists(), "the monitor must not paper over a deleted log"

    # 5. metrics scraped over HTTP pass promtool and show the open findings.
    with urllib.request.urlopen(daemon.metrics_url(), timeout=10) as resp:  # noqa: S310
        text = resp.read()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(rb'^ekm_findings\{severity="critical"\} [1-9]', text, re.M)
    assert b'ekm_events_total{check="files.permissions",severity="high"} 1.0' in text

    # 6. nothing secret left the process, in any payload, log line or metric.
    assert_no_secret(
        [p.body for p in hook.snapshot() + slack.snapshot()] + [daemon.stderr().encode(), text],
        secrets,
    )
    assert "T0KEN" not in daemon.stderr() and "XXXX" not in daemon.stderr()

    # 7. SIGTERM: clean exit 0 and STOPPING=1.
    assert daemon.stop() == 0
    assert daemon.notify.has("STOPPING=1")
    assert "Traceback" not in daemon.stderr()


def test_daemon_survives_a_receiver_that_is_down(home, sinks, start_daemon):
    hook = sinks(start=False)  # nothing listens on its port yet
    daemon = start_daemon(home, "--interval", "1", "--webhook", hook.url)
    daemon.ready()
    (home / "keys" / "api_master.json").chmod(0o640)
    wait_for(lambda: "is the receiver up?" in daemon.stderr(), "a delivery failure on stderr")
    _wait_passes(daemon, 2)  # checks go on while the receiver is down
    assert daemon.proc.poll() is None
    hook.start()
    ev = wait_for(lambda: _find(hook, "files.permissions", "keys/api_master.json"), "retry")[0]
    assert ev["severity"] == "HIGH"
    assert daemon.stop() == 0


def test_passphrase_home_burst_reload_and_overdue(phome, sinks, start_daemon):
    hook = sinks()
    daemon = start_daemon(phome, "--interval", "1", "--webhook", hook.url)  # no passphrase
    daemon.ready()
    assert "keystore MAC check skipped" in daemon.stderr()

    # A burst of wrong passphrases (threshold 3 in this home's ekm.toml).
    for _ in range(4):
        res = run_ekm(phome, "keys", "export", "db", "--reveal", EKM_PASSPHRASE="wrong-guess-123")
        assert res.returncode == 4, res.stderr
    ev = wait_for(lambda: _find(hook, "activity.failed_burst"), "burst alert")[0]
    assert ev["severity"] == "HIGH" and ev["suspicious"] is True
    assert ev["details"]["failures"] >= 4 and ev["details"]["threshold"] == 3

    # SIGHUP re-reads ekm.toml: INFO is now an alert level, so the open INFO event goes out.
    cfg = phome / "ekm.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "[monitor]\n", '[monitor]\nalert_levels = ["CRITICAL", "HIGH", "MEDIUM", "INFO"]\n'
        )
    )
    daemon.signal(signal.SIGHUP)
    ev = wait_for(lambda: _find(hook, "integrity.skipped"), "INFO event after reload")[0]
    assert ev["severity"] == "INFO" and "EKM_PASSPHRASE" in ev["message"]
    assert "configuration reloaded" in daemon.stderr()

    # A key with a one-second rotation interval becomes overdue: HIGH rotation.overdue.
    res = run_ekm(
        phome,
        "generate",
        "quick",
        "--type",
        "hmac-sha256",
        "--rotate-every",
        "1s",
        EKM_PASSPHRASE=PASSPHRASE,
    )
    assert res.returncode == 0, res.stderr
    ev = wait_for(lambda: _find(hook, "rotation.overdue", "quick"), "overdue alert")[0]
    assert ev["severity"] == "HIGH" and "ekm rotate quick" in ev["message"]

    assert_no_secret(
        [p.body for p in hook.snapshot()] + [daemon.stderr().encode()],
        secrets_of(phome, PASSPHRASE),
    )
    assert daemon.stop() == 0
    assert daemon.notify.has("STOPPING=1")


def test_daemon_refuses_an_undeployed_home(tmp_path: Path, start_daemon):
    empty = tmp_path / "nothing"
    empty.mkdir(mode=0o700)
    daemon = start_daemon(empty, "--interval", "1")
    assert daemon.proc.wait(60) == 3
    lines = daemon.stderr().splitlines()
    assert lines == [
        f"ekm: error: {empty} is not a deployed ekm home (run `ekm deploy`, or pass --home)"
    ]
    assert not daemon.notify.has("READY=1")
