"""monitoring/: the Prometheus rules and the Grafana dashboard shipped for ekm's metrics.

The rules are checked by ``promtool check rules``, their checked-in unit tests run with
``promtool test rules``, and they are run again on the series the real ``ekm monitor --once
--metrics-file`` writes (an overdue key, then a tampered audit log). Every query of the
dashboard parses as PromQL (promtool) and names only metrics ekm really exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Result

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "ekm-rules.yml"
RULE_TESTS = ROOT / "monitoring" / "prometheus" / "ekm-rules.test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "ekm-dashboard.json"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_rules_pass_promtool_check() -> None:
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 7 rules found" in res.stdout


def test_rule_unit_tests_pass() -> None:
    res = promtool("test", "rules", str(RULE_TESTS), cwd=RULE_TESTS.parent)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    # The harness means something only if a wrong expectation is reported.
    shutil.copy(RULES, tmp_path / RULES.name)
    wrong = RULE_TESTS.read_text().replace("key: jwt_signing}", "key: session}", 1)
    (tmp_path / RULE_TESTS.name).write_text(wrong)
    assert promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path).returncode != 0


def _series(metrics_text: str) -> list[tuple[str, float]]:
    """``(series with instance/job labels, value)`` for every sample of an exposition."""
    out = []
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, labels = name_labels[:-1].split("{", 1)
            labels = f'{labels},instance="h1",job="ekm"'
        else:
            name, labels = name_labels, 'instance="h1",job="ekm"'
        out.append((f"{name}{{{labels}}}", float(value)))
    return out


def _annotations(alert: str, labels: dict[str, str], value: str) -> dict[str, str]:
    """The alert's annotations as Prometheus renders them (the templates used here only)."""
    block = RULES.read_text().split(f"- alert: {alert}\n", 1)[1].split("- alert:", 1)[0]
    out = {}
    for field in ("summary", "description"):
        text = json.loads(re.search(rf"^\s+{field}: (\".*\")$", block, re.M).group(1))
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        out[field] = text.replace("{{ $value }}", value)
    return out


def _alerts_on(
    tmp_path: Path, metrics_text: str, expected: dict[str, list[dict[str, str]]]
) -> subprocess.CompletedProcess[str]:
    """Run the rules on ``metrics_text`` held for 20 minutes; expect exactly ``expected``."""
    shutil.copy(RULES, tmp_path / RULES.name)
    lines = [
        f"rule_files: [{RULES.name}]",
        "evaluation_interval: 1m",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
    ]
    for series, value in _series(metrics_text):
        if series.startswith("ekm_last_check_success_timestamp_seconds"):
            value = 0.0  # promtool's clock starts at 0: the pass happened at t=0
        lines += [f"      - series: '{series}'", f"        values: '{value!r}x20'"]
    lines.append("    alert_rule_test:")
    names = ["EkmKeyOverdue", "EkmKeyDue", "EkmAuditLogBroken", "EkmBackendDown",
             "EkmMonitorNotReporting", "EkmMonitorAbsent", "EkmCriticalFindings"]  # fmt: skip
    for alert in names:
        lines += ["      - eval_time: 10m", f"        alertname: {alert}"]
        want = expected.get(alert, [])
        if not want:
            lines.append("        exp_alerts: []")
            continue
        lines.append("        exp_alerts:")
        for labels in want:
            labels = dict(labels)
            notes = _annotations(alert, labels, labels.pop("$value", ""))
            rendered = ", ".join(f"{k}: {json.dumps(v)}" for k, v in labels.items())
            rendered_notes = ", ".join(f"{k}: {json.dumps(v)}" for k, v in notes.items())
            lines.append(f"          - exp_labels: {{{rendered}}}")
            lines.append(f"            exp_annotations: {{{rendered_notes}}}")
    (tmp_path / "real.test.yml").write_text("\n".join(lines) + "\n")
    return promtool("test", "rules", "real.test.yml", cwd=tmp_path)


def test_rules_on_real_ekm_series(run, home: Path, tmp_path: Path) -> None:
    run(
        "generate", "quick", "--type", "aes-256-gcm", "--usage", "encryption",
        "--rotate-every", "1s",
    ).expect_ok()  # fmt: skip
    time.sleep(1.1)  # now overdue
    prom = tmp_path / "ekm.prom"
    res: Result = run("monitor", "--once", "--metrics-file", str(prom))
    assert res.code == 1, res.stderr
    text = prom.read_text()
    assert 'ekm_key_overdue{key="quick"} 1.0' in text and "ekm_audit_log_ok 1.0" in text
    base = {"instance": "h1", "job": "ekm"}
    checked = _alerts_on(
        tmp_path, text, {"EkmKeyOverdue": [{**base, "key": "quick", "severity": "critical"}]}
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The audit log edited behind ekm's back: the chain check fails, the alert fires.
    log = home / "audit.log"
    log.write_bytes(log.read_bytes().replace(b'"op":"deploy"', b'"op":"dePloy"', 1))
    res = run("monitor", "--once", "--metrics-file", str(prom))
    assert res.code == 1, res.stderr
    text = prom.read_text()
    assert "ekm_audit_log_ok 0.0" in text
    checked = _alerts_on(
        tmp_path,
        text,
        {
            "EkmKeyOverdue": [{**base, "key": "quick", "severity": "critical"}],
            "EkmAuditLogBroken": [{**base, "severity": "critical"}],
            "EkmCriticalFindings": [{**base, "severity": "critical", "$value": "1"}],
        },
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # ...and the same file without the expectation fails: the check above can fail.
    assert _alerts_on(tmp_path, text, {}).returncode != 0


def _dashboard_queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_dashboard_is_grafana_json_with_panels() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "ekm-overview" and doc["schemaVersion"] >= 30
    assert len(doc["panels"]) >= 8
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "instance"}
    for p in doc["panels"]:
        assert (
            set(p["gridPos"]) == {"x", "y", "w", "h"}
            and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        )


def test_dashboard_queries_parse_and_use_only_exported_metrics(
    run, home: Path, tmp_path: Path
) -> None:
    run("encrypt", "-k", "session", "-o", str(tmp_path / "x.ekm"), stdin="x").expect_ok()
    prom = tmp_path / "ekm.prom"
    run("monitor", "--once", "--metrics-file", str(prom)).expect_ok()
    names = set(re.findall(r"^# TYPE (\w+) ", prom.read_text(), re.M))
    queries = _dashboard_queries()
    used = {m for q in queries for m in re.findall(r"\bekm_\w+", q)}
    assert used, queries
    assert used <= names, f"metrics not exported by ekm: {sorted(used - names)}"
    assert set(re.findall(r"\bekm_\w+", RULES.read_text())) <= names

    # Every query is valid PromQL: promtool parses it as a recording rule.
    body = ["groups:", "  - name: dashboard", "    rules:"]
    for i, q in enumerate(queries):
        q = q.replace("$instance", ".*")
        body += [f"      - record: ekm:dashboard_{i}", f"        expr: {json.dumps(q)}"]
    (tmp_path / "dash.yml").write_text("\n".join(body) + "\n")
    res = promtool("check", "rules", str(tmp_path / "dash.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
