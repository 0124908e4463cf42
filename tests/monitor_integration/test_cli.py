"""``ekm monitor --once`` through the real ``ekm`` command: exit codes, JSON, notifiers,
the metrics file, usage errors; and ``ekm deploy --systemd`` checked by systemd-analyze."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest

from tests.monitor_integration.conftest import assert_no_secret, secrets_of


def test_once_on_a_clean_home_exits_0(run, ekm_env):
    res = run("monitor", "--once").expect_ok()
    assert res.stdout == "" and res.stderr == ""  # off a terminal: silent on success (cron)
    from tests.operator.tty import run_on_pty

    code, out = run_on_pty(["monitor", "--once"], ekm_env)
    assert code == 0 and "no findings" in out and "exit 0" in out


def test_bare_monitor_is_once(run):
    assert run("monitor").expect_ok().stdout == ""


def test_once_reports_findings_and_exits_1(run, home):
    (home / "keys" / "session.json").chmod(0o644)
    res = run("monitor", "--once")
    assert res.code == 1, res.stderr
    header, row = res.stdout.splitlines()[:2]
    assert header.split()[:3] == ["SEVERITY", "CHECK", "SUBJECT"]
    assert row.split()[:3] == ["HIGH", "files.permissions", "keys/session.json"]
    assert "1 high (exit 1: fail-on high)" in res.stderr


def test_fail_on_threshold(run, home):
    (home / "keys" / "session.json").chmod(0o644)
    assert run("monitor", "--once", "--fail-on", "critical").code == 0
    assert run("monitor", "--once", "--fail-on", "low").code == 1
    (home / "ekm.toml").write_text(
        (home / "ekm.toml").read_text() + '\n[monitor]\nfail_on = "critical"\n'
    )
    assert run("monitor", "--once").code == 0  # [monitor] fail_on from ekm.toml
    assert run("monitor", "--once", "--fail-on", "high").code == 1  # the flag wins


def test_json_document(run, home):
    (home / "keys" / "rsa.json").chmod(0o640)
    res = run("--json", "monitor", "--once")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["home"] == str(home) and doc["fail_on"] == "high" and doc["exit_code"] == 1
    assert doc["summary"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}
    (finding,) = doc["findings"]
    assert finding["check"] == "files.permissions" and finding["severity"] == "HIGH"
    assert finding["subject"] == "keys/rsa.json" and finding["suspicious"] is True
    assert finding["details"]["mode"] == "0640"


def test_once_sends_to_webhook_and_writes_metrics_file(run, home, sinks, ekm_env, tmp_path):
    secrets = secrets_of(home)
    hook = sinks()
    (home / "keys" / "hmac.json").chmod(0o644)
    out = tmp_path / "textfile" / "ekm.prom"
    out.parent.mkdir()
    res = run("monitor", "--once", "--webhook", hook.url, "--metrics-file", str(out))
    assert res.code == 1, res.stderr
    (post,) = hook.snapshot()
    doc = post.json()
    assert doc["status"] == "firing" and doc["event"]["check"] == "files.permissions"
    assert "X-Ekm-Signature" not in post.headers  # no EKM_WEBHOOK_SECRET set: unsigned, warned
    assert "EKM_WEBHOOK_SECRET" in res.stderr and "T0KEN" not in res.stderr
    # The textfile: complete (renamed into place, no temporary left), 0644, valid for promtool.
    assert sorted(p.name for p in out.parent.iterdir()) == ["ekm.prom"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=out.read_bytes(), capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert b'ekm_findings{severity="high"} 1.0' in out.read_bytes()
    assert_no_secret([post.body, out.read_bytes(), res.stderr.encode()], secrets)


def test_once_with_a_receiver_down_still_reports(run, home, sinks):
    hook = sinks(start=False)
    (home / "keys" / "hmac.json").chmod(0o644)
    res = run("--json", "monitor", "--once", "--webhook", hook.url, env=None)
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["findings"][0]["check"] == "files.permissions"
    (failure,) = doc["notifier_failures"]
    assert failure["check"] == "notifier.failed" and "is the receiver up?" in failure["message"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--once", "--daemon"], ["--once and --daemon exclude each other"]),
        (["--once", "--interval", "5"], ["--interval goes with --daemon"]),
        (["--fail-on", "severe"], ["'severe' is not one of"]),
        (["--webhook", "ftp://example.org/x"], ["webhook URL must start with http://"]),
        (["--slack", "https://user:pw@hooks.example/x"], ["must not embed a user name"]),
        (["--metrics-port", "70000"], ["--metrics-port 70000 is out of range"]),
    ],
)
def test_usage_errors_exit_2(run, args, fragments):
    line = run("monitor", *args).expect_error(2, *fragments)
    assert "pw@" not in line


def test_missing_home_and_metrics_dir_exit_3(run, base_env, tmp_path, home):
    env = {**base_env, "EKM_HOME": str(tmp_path / "none")}
    run("monitor", "--once", env=env).expect_error(3, "is not a deployed ekm home")
    run("monitor", "--once", "--metrics-file", str(tmp_path / "no" / "x.prom")).expect_error(
        3, "metrics file directory", "does not exist"
    )


def test_bad_monitor_config_exit_3(run, home):
    (home / "ekm.toml").write_text((home / "ekm.toml").read_text() + "\n[monitor]\ninterval = 5\n")
    run("monitor", "--once").expect_error(3, "interval")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_deploy_systemd_units_pass_systemd_analyze(run, base_env, tmp_path):
    home, units = tmp_path / "fresh", tmp_path / "units"
    res = run("deploy", "--systemd", str(units), env={**base_env, "EKM_HOME": str(home)})
    res.expect_ok()
    names = sorted(p.name for p in units.iterdir())
    assert names == ["ekm-monitor.service", "ekm-rotate.service", "ekm-rotate.timer"]
    monitor_unit = (units / "ekm-monitor.service").read_text()
    assert "Type=notify" in monitor_unit and f"--home {home}" in monitor_unit
    # --man=no: the Documentation= man pages are not installed in the test environment.
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(units / n) for n in names)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
