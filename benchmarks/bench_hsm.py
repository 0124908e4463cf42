"""Throughput of the PKCS#11 token layer against direct python-pkcs11, on a SoftHSM2 token.

Run: ``python3 benchmarks/bench_hsm.py [--seconds 2]`` from the repository root. It creates a
throw-away SoftHSM2 token, then measures in the same process, alternating the two sides:

* AES-256-GCM encryption of 100-byte values in the token (random 96-bit IV each time);
* RSA-4096 PSS/SHA-256 signatures in the token.

and prints ops/s for ekm's ``Token`` and for bare python-pkcs11, and the overhead ratio
(target: ekm within 20% of direct, i.e. ratio >= 0.80).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def compare(name: str, ekm_fn: Callable[[], object], direct_fn: Callable[[], object], s: float):
    """Alternate direct/ekm rounds (3 each) and report the best of each side."""
    ekm_best = direct_best = 0.0
    for _ in range(3):
        direct_best = max(direct_best, rate(direct_fn, s / 3))
        ekm_best = max(ekm_best, rate(ekm_fn, s / 3))
    ratio = ekm_best / direct_best
    verdict = "OK" if ratio >= 0.80 else "OVER BUDGET"
    print(
        f"{name:<34} direct {direct_best:>9.0f} ops/s   ekm {ekm_best:>9.0f} ops/s   "
        f"ratio {ratio:.2f} ({(1 - ratio) * 100:+.0f}% overhead) {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement side")
    args = parser.parse_args()

    from tests.softhsm import make_token

    with tempfile.TemporaryDirectory(prefix="ekm-bench-hsm-") as tmp:
        tok = make_token(Path(tmp), label="bench")
        os.environ["SOFTHSM2_CONF"] = str(tok.conf_path)

        import pkcs11
        from pkcs11 import MGF, GCMParams, Mechanism, ObjectClass

        from ekm.backends.pkcs11_token import HsmSettings, Token
        from ekm.crypto.keytypes import KeyType

        settings = HsmSettings.from_mapping(tok.hsm_table(), env={"EKM_TEST_HSM_PIN": tok.pin})
        token = Token.open(settings)
        token.generate("bench/aes", KeyType.AES_256_GCM)
        token.generate("bench/rsa", KeyType.RSA_4096)

        # Direct python-pkcs11: its own session on the same token, keys looked up once.
        lib = pkcs11.lib(tok.module_path)
        session = lib.get_token(token_label=tok.label).open(rw=True)  # already logged in
        aes = session.get_key(ObjectClass.SECRET_KEY, label="bench/aes")
        rsa = session.get_key(ObjectClass.PRIVATE_KEY, label="bench/rsa")
        value, aad = os.urandom(100), b"table/column"

        def direct_aes() -> bytes:
            iv = os.urandom(12)
            return iv + aes.encrypt(
                value, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)
            )

        def direct_rsa() -> bytes:
            return rsa.sign(
                b"message",
                mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32),
            )

        print(f"SoftHSM2 {'.'.join(map(str, lib.library_version))} via python-pkcs11, "
              f"{args.seconds:g} s per side, best of 3 alternating rounds")  # fmt: skip
        compare(
            "AES-256-GCM encrypt, 100 B",
            lambda: token.aead_encrypt("bench/aes", value, aad),
            direct_aes,
            args.seconds,
        )
        compare(
            "RSA-4096 PSS-SHA256 sign",
            lambda: token.sign("bench/rsa", KeyType.RSA_4096, b"message"),
            direct_rsa,
            args.seconds,
        )
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
