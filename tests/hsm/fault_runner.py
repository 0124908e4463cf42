"""Run one HSM scenario in a fresh process and print what happened as one JSON line.

Fault cases need their own process: SoftHSM reads SOFTHSM2_CONF once per process and
python-pkcs11 caches loaded modules, so a wrong library, a second token or a wrong PIN must not
share the test process's token. Usage: ``python -m tests.hsm.fault_runner SCENARIO JSON``.
The [hsm] table is JSON; the PIN comes from EKM_TEST_HSM_PIN as in production.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any


def _result(**fields: Any) -> None:
    print(json.dumps(fields))


def main(argv: list[str]) -> int:
    scenario, table = argv[0], json.loads(argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # everything ekm logs is visible
    from ekm.backends.pkcs11_token import HsmSettings, Token, diagnose
    from ekm.crypto.keytypes import KeyType
    from ekm.errors import EkmError

    settings = HsmSettings.from_mapping(table, source="fault.toml")
    steps: list[dict[str, Any]] = []

    def attempt(name: str, fn: Any) -> Any:
        try:
            value = fn()
        except EkmError as exc:
            steps.append({"step": name, "error": type(exc).__name__, "message": str(exc),
                          "exit_code": exc.exit_code})  # fmt: skip
            return None
        steps.append({"step": name, "ok": True})
        return value

    if scenario == "diagnose":
        d = diagnose(settings)
        _result(diagnosis=d.to_dict())
        return 0
    if scenario == "open-twice":
        attempt("open1", lambda: Token.open(settings))
        attempt("open2", lambda: Token.open(settings))
    elif scenario in ("remove", "reinit"):
        token = Token.open(settings)
        token.generate("fault/aes", KeyType.AES_256_GCM)
        token.aead_encrypt("fault/aes", b"x", b"")
        tokendir = Path(argv[2])
        if scenario == "remove":
            shutil.rmtree(tokendir)
        else:
            from tests import softhsm

            softhsm.reinit_token(softhsm.SoftHsmToken(*json.loads(argv[3])))
        attempt("encrypt", lambda: token.aead_encrypt("fault/aes", b"x", b""))
        attempt("encrypt-again", lambda: token.aead_encrypt("fault/aes", b"x", b""))
        attempt("generate", lambda: token.generate("fault/new", KeyType.AES_256_GCM))
        d = diagnose(settings)
        steps.append({"step": "diagnose", "connected": d.connected, "message": d.error_message})
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    _result(steps=steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
