"""Run one Python-API scenario on an HSM-backed home in a fresh process; print JSON.

``python -m tests.hsm_integration.api_runner SCENARIO ARGS...`` with ``EKM_HOME`` and
``SOFTHSM2_CONF`` set by the test. This is the path ``ekm encrypt``/``ekm sign`` take for keys
whose backend is pkcs11 (KeyManager -> hsm_handle -> the token), exercised before those
commands exist. EkmErrors are answered as ``{"error": type, "message", "exit_code"}`` so the
test checks them; anything else is a traceback and fails the test.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from ekm.backends import hsm_handle
from ekm.errors import EkmError
from ekm.manager import KeyManager


def _sign(mgr: KeyManager, name: str, data_hex: str, version: str = "") -> dict[str, Any]:
    key = mgr.key_info(name)
    signer = hsm_handle.signer_for(mgr.hsm_token(), key, int(version) if version else None)
    data = bytes.fromhex(data_hex)
    sig = signer.sign(data)
    signer.verify(data, sig)
    doc = signer.sign_document(hashlib.sha512(data).digest())
    mgr.audit_log.append("sign", key=name, version=signer.version, backend="pkcs11")
    return {
        "signature": sig.hex(),
        "jws": signer.sign_jws(data).hex(),
        "document": doc.hex(),
        "public_der": signer.public_key_der().hex(),
        "jose_alg": signer.jose_alg,
        "version": signer.version,
    }


def _seal(mgr: KeyManager, name: str, plaintext_hex: str, aad: str) -> dict[str, Any]:
    key = mgr.key_info(name)
    wrapper = hsm_handle.wrapper_for(mgr.hsm_token(), key, for_wrap=True)
    blob = wrapper.wrap(bytes.fromhex(plaintext_hex), aad.encode())
    mgr.audit_log.append("encrypt", key=name, version=wrapper.version, backend="pkcs11")
    return {"blob": blob.hex(), "version": wrapper.version}


def _open(mgr: KeyManager, name: str, version: str, blob_hex: str, aad: str) -> dict[str, Any]:
    key = mgr.key_info(name)
    wrapper = hsm_handle.wrapper_for(mgr.hsm_token(), key, int(version))
    plain = wrapper.unwrap(bytes.fromhex(blob_hex), aad.encode())
    mgr.audit_log.append("decrypt", key=name, version=wrapper.version, backend="pkcs11")
    return {"plaintext": plain.hex()}


def _verify_log(mgr: KeyManager) -> dict[str, Any]:
    mgr.unlock()
    return mgr.audit_log.verify().to_dict()


SCENARIOS = {"sign": _sign, "seal": _seal, "open": _open, "verify-log": _verify_log}


def main(argv: list[str]) -> int:
    scenario, args = argv[0], argv[1:]
    mgr = KeyManager()
    try:
        mgr.unlock()
        out = SCENARIOS[scenario](mgr, *args)
    except EkmError as exc:
        out = {"error": type(exc).__name__, "message": exc.message, "exit_code": exc.exit_code}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
