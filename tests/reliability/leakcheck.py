"""Secret-leak checking: collect every byte ekm emits, search it for every secret we know.

``LeakCheck`` holds named secrets (key material of every version, the root key and its
derived subkeys, the master key file's KEK, passphrases, PINs, tokens) and named outputs
(stdout, stderr, audit log, backup headers, alerts, metrics). ``find()`` returns every
(secret, encoding, output) hit, searching each secret raw, as hex (lower and upper case),
base64 and base64url (with and without padding), and a 16-byte prefix of each (a partial
leak, e.g. a truncated repr), so a leak is found however it was formatted.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

MIN_SECRET = 8  # shorter values would match by chance


def encodings(secret: bytes) -> dict[str, bytes]:
    """The spellings a secret may take in text output."""
    forms: dict[str, bytes] = {}
    for label, value in (("", secret), ("prefix ", secret[:16] if len(secret) > 16 else b"")):
        if len(value) < MIN_SECRET:
            continue
        b64 = base64.b64encode(value[: len(value) - len(value) % 3] if label else value)
        url = base64.urlsafe_b64encode(value[: len(value) - len(value) % 3] if label else value)
        forms.update(
            {
                f"{label}raw": value,
                f"{label}hex": value.hex().encode(),
                f"{label}HEX": value.hex().upper().encode(),
                f"{label}base64": b64.rstrip(b"=") if label else b64,
                f"{label}base64 unpadded": b64.rstrip(b"="),
                f"{label}base64url": url.rstrip(b"="),
            }
        )
    return forms


@dataclass
class LeakCheck:
    """Secrets and outputs of one scenario; ``assert_clean`` fails naming every hit."""

    secrets: dict[str, bytes] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)

    def secret(self, name: str, value: bytes | str) -> None:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) >= MIN_SECRET:
            self.secrets[name] = raw

    def output(self, name: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        self.outputs[name] = self.outputs.get(name, b"") + raw

    def find(self) -> list[tuple[str, str, str]]:
        hits = []
        for sname, secret in self.secrets.items():
            for form, needle in encodings(secret).items():
                for oname, data in self.outputs.items():
                    if needle in data:
                        hits.append((sname, form, oname))
        return hits

    def assert_clean(self) -> None:
        hits = self.find()
        assert not hits, "secrets found in output: " + "; ".join(
            f"{s} ({f}) in {o}" for s, f, o in hits[:20]
        )
