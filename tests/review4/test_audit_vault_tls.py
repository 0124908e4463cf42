"""``ekm audit`` flags ``[vault] verify = false`` (EKM-VAULT-TLS-VERIFY, always evaluated).

The fact comes from ekm.toml alone: the endpoint below does not resolve, so a test that passes
proves the audit never tried to reach Vault.
"""

from __future__ import annotations

import json

import pytest

RULE = "EKM-VAULT-TLS-VERIFY"
VAULT = '\n[vault]\nendpoint = "https://vault.invalid:8200"\n'


def _with(fhome, text: str) -> None:
    cfg = fhome / "ekm.toml"
    cfg.write_text(cfg.read_text() + text)


def _audit(frun, *args: str) -> tuple[int, dict]:
    res = frun("audit", "--compliance", "nist-800-57", "--format", "json", *args)
    assert "Traceback" not in res.stderr
    return res.code, json.loads(res.stdout)


def test_verify_false_is_a_high_finding_naming_the_config_key(fhome, frun):
    _with(fhome, VAULT + "verify = false\n")
    code, doc = _audit(frun)
    (finding,) = [f for f in doc["findings"] if f["rule"] == RULE]
    assert finding["severity"] == "high" and finding["status"] == "fail"
    assert finding["rule_set"] == "ekm-integrity" and finding["key"] is None
    assert "[vault] verify = false" in finding["found"] and "ekm.toml" in finding["found"]
    assert "RFC 9525" in finding["cite"]
    assert "ca_cert" in finding["remedy"]
    assert code == 1  # --fail-on high by default


def test_verify_false_fails_even_with_fail_on_high_and_other_rules_clean(fhome, frun):
    _with(fhome, VAULT + "verify = false\n")
    res = frun("audit", "--compliance", "nist-800-57", "--fail-on", "high")
    assert res.code == 1
    assert RULE in res.stdout and "[vault] verify = false" in res.stdout


@pytest.mark.parametrize("line", ["", "verify = true\n"])
def test_verify_on_passes(fhome, frun, line):
    _with(fhome, VAULT + line)
    _, doc = _audit(frun)
    assert RULE not in {f["rule"] for f in doc["findings"]}
    assert RULE not in {u["rule"] for u in doc["unknown"]}


def test_no_vault_section_no_verdict(fhome, mgr):
    from ekm.timeutil import utcnow

    result = mgr.audit("nist-800-57", now=utcnow(), record=False)
    assert RULE not in {f.rule.id for f in [*result.findings, *result.passed, *result.unknown]}


def test_vault_tls_fact_from_config_only():
    from ekm.compliance.collect import vault_tls_verify

    assert vault_tls_verify(None) is None
    assert vault_tls_verify({"endpoint": "https://v:8200"}) is True
    assert vault_tls_verify({"verify": True}) is True
    assert vault_tls_verify({"verify": False}) is False
    # ekm refuses a non-boolean verify when it builds its Vault client: not "off".
    assert vault_tls_verify({"verify": "false"}) is True


def test_verify_on_is_a_pass_verdict(fhome):
    from ekm.manager import KeyManager
    from ekm.timeutil import utcnow

    _with(fhome, VAULT + "verify = true\n")
    result = KeyManager(fhome, env={}).audit("nist-800-57", now=utcnow(), record=False)
    (passed,) = [p for p in result.passed if p.rule.id == RULE]
    assert passed.found == "[vault] verify is on"


def test_the_vault_rule_counts_only_with_a_vault_section(fhome, frun):
    _, without = _audit(frun)
    _with(fhome, VAULT)
    _, with_vault = _audit(frun)
    assert with_vault["evaluated"]["rules"] == without["evaluated"]["rules"] + 1
