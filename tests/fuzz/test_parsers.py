"""Property tests: no input makes a parser of untrusted input fail other than with EkmError.

For each target of tests/fuzz/targets.py, hypothesis feeds arbitrary bytes and, where random
bytes would rarely get past the first check, structured inputs (valid-looking TOML, JSON
documents with hostile field values, mutated real ciphertexts and bundles). The property: the
call returns, or raises an EkmError with a one-line message; never another exception type
(which the CLI would turn into "internal error", exit 70).

Deeply nested JSON/TOML ("[" * 5000) is tested on its own: Python's json and tomllib raise
RecursionError for it, which every parser must turn into its own clean error.

The suite runs 40 examples per property (fast); EKM_FUZZ_EXAMPLES=5000 for a long run.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS, run_one

FUZZ = settings(
    max_examples=int(os.environ.get("EKM_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("name", sorted(TARGETS))
@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=b"\x00" * 64)
def test_arbitrary_bytes_only_raise_ekm_errors(name: str, data: bytes) -> None:
    run_one(name, data)


# -- structured inputs -------------------------------------------------------------------------
CONFIG_SECTIONS = ["storage", "master_key", "rotation", "audit", "backup", "monitor", "keys.k"]
CONFIG_KEYS = ["backend", "source", "lock_timeout", "argon2_memory_kib", "type", "usage",
               "rotate_every", "notify_before", "backup", "labels", "keep_versions",
               "log"]  # fmt: skip
toml_values = (
    st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.text(max_size=12).map(json.dumps)
    | st.sampled_from(["true", "false", "[]", "{}", '"90d"', '"-1d"', '"never"', "1979-05-27"])
)


@FUZZ
@given(
    items=st.lists(
        st.tuples(st.sampled_from(CONFIG_SECTIONS), st.sampled_from(CONFIG_KEYS), toml_values),
        max_size=8,
    )
)
def test_config_with_hostile_values(items: list[tuple[str, str, str]]) -> None:
    text = "".join(f"[{sec}]\n{key} = {val}\n" for sec, key, val in items)
    run_one("config_toml", text.encode())


VALID_META = {
    "name": "fuzz", "type": "aes-256-gcm", "usage": "encryption", "backend": "file",
    "policy": {"interval": "90d", "notify_before": "7d", "backup": True, "keep_versions": None},
    "labels": {}, "created": "2026-01-01T00:00:00Z", "rotated": None,
    "min_decryption_version": 1,
    "versions": [{"version": 1, "state": "primary", "created": "2026-01-01T00:00:00Z",
                  "activated": "2026-01-01T00:00:00Z", "retired": None, "usage_count": 0,
                  "destroy_after": None, "backend_ref": None}],
}  # fmt: skip


@FUZZ
@given(field=st.sampled_from(sorted(VALID_META)), value=json_values, vfield=st.text(max_size=16))
def test_key_document_with_hostile_metadata(field: str, value: object, vfield: str) -> None:
    meta = json.loads(json.dumps(VALID_META))
    meta["versions"][0][vfield] = value
    meta[field] = value
    doc = {"format": 1, "meta": meta, "material": {"1": "AAAA"}, "mac": "00"}
    run_one("keystore_document", json.dumps(doc).encode())


@FUZZ
@given(doc=st.dictionaries(
    st.sampled_from(["format", "source", "wrapped_root", "key_file", "key_id", "kdf"]),
    json_values, max_size=6))  # fmt: skip
def test_master_json_with_hostile_fields(doc: dict) -> None:
    run_one("master_json", json.dumps(doc).encode())


@FUZZ
@given(header=st.dictionaries(
    st.sampled_from(["format", "mode", "keys", "nonce", "kdf", "recipient", "created"]),
    json_values, max_size=7), tail=st.binary(max_size=64))  # fmt: skip
def test_backup_header_with_hostile_fields(header: dict, tail: bytes) -> None:
    header.setdefault("format", 1)
    header.setdefault("mode", "local")
    header.setdefault("keys", [])
    run_one("backup_bundle", b"EKMBAK1\n" + json.dumps(header).encode() + b"\n" + tail)


@FUZZ
@given(records=st.lists(st.dictionaries(
    st.sampled_from(["seq", "prev", "mac", "op", "time"]), json_values, max_size=5),
    max_size=5))  # fmt: skip
def test_audit_lines_with_hostile_fields(records: list[dict]) -> None:
    run_one("audit_log", b"".join(json.dumps(r).encode() + b"\n" for r in records))


def _real_record() -> bytes:
    from ekm.crypto import envelope
    from tests.fuzz.targets import _wrapper

    return envelope.encrypt(_wrapper(), b"hello fuzz")


def _real_stream() -> bytes:
    import io

    from ekm.crypto import stream
    from tests.fuzz.targets import _wrapper

    out = io.BytesIO()
    stream.encrypt_stream(io.BytesIO(b"s" * 200), out, _wrapper(), segment_size=64)
    return out.getvalue()


@FUZZ
@given(cut=st.integers(0, 400), pos=st.integers(0, 400), byte=st.integers(0, 255))
def test_mutated_real_ciphertexts(cut: int, pos: int, byte: int) -> None:
    for target, blob in (
        ("envelope_record", _real_record()),
        ("stream_ciphertext", _real_stream()),
    ):
        mutated = bytearray(blob[: max(1, len(blob) - cut % len(blob))])
        mutated[pos % len(mutated)] = byte
        run_one(target, bytes(mutated))


@FUZZ
@given(tag=st.text(max_size=10), body=st.text(max_size=40))
def test_api_key_shaped_strings(tag: str, body: str) -> None:
    run_one("api_key", f"ekm_{tag}_{body}".encode())


@FUZZ
@given(header=json_values, claims=json_values, sig=st.binary(max_size=40))
def test_jwt_shaped_tokens(header: object, claims: object, sig: bytes) -> None:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{part(header)}.{part(claims)}.{base64.urlsafe_b64encode(sig).decode()}"
    run_one("jwt", token.encode())
    if isinstance(header, dict):
        run_one(
            "jwt", f"{part({**header, 'kid': 'fuzz:v1', 'alg': 'HS256'})}.{part(claims)}.x".encode()
        )


@FUZZ
@given(rules=st.lists(st.dictionaries(
    st.sampled_from(["id", "title", "severity", "check", "param", "match", "since", "until"]),
    toml_values, max_size=6), max_size=3))  # fmt: skip
def test_custom_rule_files_with_hostile_rules(rules: list[dict]) -> None:
    text = '[rule_set]\nid = "custom"\ntitle = "t"\nversion = "1"\n'
    for rule in rules:
        text += "[[rules]]\n" + "".join(f"{k} = {v}\n" for k, v in rule.items())
    run_one("compliance_rules", text.encode())


# -- deep nesting ---------------------------------------------------------------------------
DEEP = b"[" * 5000


def _deep_jwt() -> bytes:
    return base64.urlsafe_b64encode(DEEP).rstrip(b"=") + b".e30.sig"


DEEP_INPUTS = {
    "config_toml": b"a = " + DEEP,
    "keystore_document": DEEP,
    "master_json": DEEP,
    "backup_bundle": b"EKMBAK1\n" + DEEP + b"\n",
    "audit_log": DEEP + b"\n",
    "compliance_rules": b"a = " + DEEP,
    "jwt": _deep_jwt(),
}


@pytest.mark.parametrize("name", sorted(DEEP_INPUTS))
def test_deeply_nested_input_is_refused_cleanly(name: str) -> None:
    run_one(name, DEEP_INPUTS[name])
