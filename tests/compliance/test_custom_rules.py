# ruff: noqa: E501  (the table of broken rule files reads best one case per line)
"""``--rules FILE``: an organisation's own rule set, validated as hostile input.

Every error is an InvalidError (exit 3) or NotFoundError (exit 3) whose one-line message names
the file, the rule id and the field, so the author can fix the file without reading ekm's code.
"""

from __future__ import annotations

import pytest

from ekm.compliance.engine import evaluate, load_custom_rules
from ekm.errors import InvalidError, NotFoundError

from .builders import Y2031, inv, key

HEAD = """
id = "acme"
title = "ACME crypto policy"
version = "2.1"
changelog = ["2.1: RSA floor raised"]
sources = [{ id = "ACME-SEC-7", title = "ACME security standard 7" }]
"""

GOOD_RULE = """
[[rule]]
id = "ACME-RSA"
title = "RSA keys of at least 4096 bits"
severity = "high"
cite = "ACME-SEC-7 4.2"
[rule.match]
families = ["rsa"]
[rule.require]
min_key_bits = 4096
"""


def _write(tmp_path, text, name="acme.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_rule_set_loads_and_evaluates(tmp_path):
    rs = load_custom_rules(_write(tmp_path, HEAD + GOOD_RULE))
    assert rs.id == "acme" and rs.custom and rs.version == "2.1"
    result = evaluate(inv(key("rsa-3072", "small"), key("rsa-4096", "big")), [rs])
    assert [(f.rule.id, f.key) for f in result.findings] == [("ACME-RSA", "small")]
    assert [(p.rule.id, p.key) for p in result.passed] == [("ACME-RSA", "big")]


def test_custom_rule_with_dates(tmp_path):
    text = HEAD + GOOD_RULE.replace(
        'cite = "ACME-SEC-7 4.2"', 'cite = "x"\nvalid_from = 2031-01-01'
    )
    rs = load_custom_rules(_write(tmp_path, text))
    assert evaluate(inv(key("rsa-3072")), [rs]).findings == []
    assert evaluate(inv(key("rsa-3072")), [rs], as_of=Y2031).findings


def test_custom_min_strength_fails_a_weaker_key(tmp_path):
    text = HEAD + GOOD_RULE.replace("min_key_bits = 4096", "min_strength = 192")
    result = evaluate(inv(key("rsa-4096")), [load_custom_rules(_write(tmp_path, text))])
    assert result.findings[0].found == "rsa-4096 provides 128-bit security strength"
    assert result.findings[0].required == ">= 192 bits"


BAD = [
    # (replace this, with that, expected fragment naming rule + field)
    ('severity = "high"', 'severity = "urgent"', "rule 'ACME-RSA': field 'severity'"),
    ("min_key_bits = 4096", 'min_key_bits = "4096"', "field 'require.min_key_bits': expected a positive integer"),
    ("min_key_bits = 4096", "min_key_bits = -1", "field 'require.min_key_bits'"),
    ("min_key_bits = 4096", "min_keybits = 4096", "field 'require.min_keybits': unknown requirement"),
    ('families = ["rsa"]', 'families = ["rsaa"]', "field 'match.families': unknown value 'rsaa'"),
    ('families = ["rsa"]', 'types = ["rsa-1024"]', "field 'match.types': unknown value 'rsa-1024'"),
    ('families = ["rsa"]', 'operation = "using"', "field 'match.operation'"),
    ('families = ["rsa"]', 'famillies = ["rsa"]', "field 'match.famillies': unknown field"),
    ('cite = "ACME-SEC-7 4.2"', "", "rule 'ACME-RSA': field 'cite': missing"),
    ('cite = "ACME-SEC-7 4.2"', 'cite = "x"\nverified = false', "field 'note': an unverified rule"),
    ('cite = "ACME-SEC-7 4.2"', 'cite = "x"\nvalid_from = "2031"', "field 'valid_from': expected a TOML date"),
    ('cite = "ACME-SEC-7 4.2"', 'cite = "x"\nvalid_from = 2031-01-01\nvalid_until = 2030-01-01',
     "field 'valid_until': is before valid_from"),
    ('cite = "ACME-SEC-7 4.2"', 'cite = "x"\nowner = "me"', "rule 'ACME-RSA': field 'owner': unknown field"),
    ("min_key_bits = 4096", "min_key_bits = 4096\naudit_log = true", "field 'require': mixes deployment"),
    ("min_key_bits = 4096", 'storage = ["vault"]', "field 'require.storage': unknown value 'vault'"),
    ("min_key_bits = 4096", "usage_limit = { max = 10, warn_at = 2 }", "field 'require.usage_limit'"),
    ("min_key_bits = 4096", "disallowed = false", "field 'require.disallowed': expected true"),
    ('families = ["rsa"]', 'families = ["rsa"]\ntypes = ["aes-256-gcm"]', "field 'match': selects no key type"),
    ('id = "ACME-RSA"', 'id = "ACME RSA!"', "field 'id': missing or invalid"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "fragment"), BAD)
def test_invalid_rule_field_is_named(tmp_path, old, new, fragment):
    assert old in GOOD_RULE
    path = _write(tmp_path, HEAD + GOOD_RULE.replace(old, new))
    with pytest.raises(InvalidError) as exc:
        load_custom_rules(path)
    msg = str(exc.value)
    assert exc.value.exit_code == 3
    assert msg.startswith(f"{path}: ")
    assert fragment in msg
    assert msg.endswith("fix the rule file")
    assert "\n" not in msg


def test_deployment_rule_with_match_is_refused(tmp_path):
    text = HEAD + GOOD_RULE.replace("min_key_bits = 4096", "audit_log = true")
    with pytest.raises(InvalidError, match="field 'match': a deployment rule matches no keys"):
        load_custom_rules(_write(tmp_path, text))


def test_duplicate_rule_id(tmp_path):
    with pytest.raises(InvalidError, match="rule 'ACME-RSA': field 'id': duplicate rule id"):
        load_custom_rules(_write(tmp_path, HEAD + GOOD_RULE + GOOD_RULE))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id = 'acme'\n[[rule]\n", "field '(syntax)': not valid TOML"),
        (HEAD, "field 'rule': no [[rule]] tables"),
        (HEAD.replace('id = "acme"', ""), "field 'id': missing"),
        (HEAD + "colour = 'red'\n" + GOOD_RULE, "field 'colour': unknown top-level field"),
        (HEAD.replace('version = "2.1"', "version = 2") + GOOD_RULE, "field 'version': expected"),
        (HEAD.replace('["2.1: RSA floor raised"]', "3"), "field 'changelog'"),
        ("rule = 5\n" + HEAD, "field 'rule'"),
        (
            HEAD + "[[rule]]\nid = 'X'\ntitle = 't'\nseverity = 'low'\ncite = 'c'\n",
            "field 'require'",
        ),
    ],
)
def test_invalid_rule_file_structure(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(InvalidError) as exc:
        load_custom_rules(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert fragment in str(exc.value)


def test_missing_rule_file(tmp_path):
    with pytest.raises(NotFoundError) as exc:
        load_custom_rules(tmp_path / "nope.toml")
    assert exc.value.exit_code == 3
    assert "rule file not found; check the --rules path" in str(exc.value)


def test_rule_file_is_a_directory(tmp_path):
    with pytest.raises(InvalidError, match="is a directory, not a rule file"):
        load_custom_rules(tmp_path)


def test_rule_file_not_utf8(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"id = '\xff\xfe'\n")
    with pytest.raises(InvalidError, match="not UTF-8 text"):
        load_custom_rules(path)


def test_rule_file_too_large(tmp_path):
    path = tmp_path / "big.toml"
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    with pytest.raises(InvalidError, match="larger than 1 MiB"):
        load_custom_rules(path)


def test_error_message_does_not_echo_arbitrary_file_content(tmp_path):
    """A secret pasted into a rule file by mistake is not repeated in the error."""
    text = HEAD + GOOD_RULE.replace('severity = "high"', 'severity = "hunter2-secret-token"')
    with pytest.raises(InvalidError) as exc:
        load_custom_rules(_write(tmp_path, text))
    assert "field 'severity': expected one of: low, medium, high, critical" in str(exc.value)
    assert "hunter2" not in str(exc.value)
