#!/usr/bin/env python3
"""Coverage-guided fuzzing of ekm's parsers of untrusted input with atheris (by hand only).

    pip install atheris        # 3.0.0 installs on CPython 3.11 (checked)
    python3 tests/fuzz/atheris_parsers.py TARGET [libFuzzer flags, e.g. -max_total_time=300
        -rss_limit_mb=512 -timeout=5 CORPUS_DIR]
    python3 tests/fuzz/atheris_parsers.py --list

TARGET is a name from tests/fuzz/targets.py (config_toml, keystore_document, master_json,
backup_bundle, audit_log, envelope_record, stream_ciphertext, compliance_rules, api_key, jwt).
Any exception other than EkmError is a crash (libFuzzer saves the input); ``-timeout`` catches
hangs and ``-rss_limit_mb`` memory growth.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from tests.fuzz.targets import TARGETS, run_one

    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "--list"):
        print(__doc__)
        print("targets:", ", ".join(sorted(TARGETS)))
        return
    name = sys.argv.pop(1)
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; one of: {', '.join(sorted(TARGETS))}")
    import atheris

    with atheris.instrument_imports():
        import ekm.auditlog
        import ekm.compliance.ruleset
        import ekm.config
        import ekm.crypto.envelope
        import ekm.crypto.stream
        import ekm.keystore
        import ekm.masterkey
        import ekm.rotation.backup  # noqa: F401

    def one_input(data: bytes) -> None:
        run_one(name, data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
